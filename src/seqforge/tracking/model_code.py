"""What a registered version's pyfunc is built by: MLflow's *models from code* runs this file when the version loads
(with the project's code the version carries), so loading unpickles nothing. The weights and tokenizer are plain
artifacts, checked against the SHA-256 digests recorded at registration (`Seq2SeqModel.load_context`)."""

import mlflow

from seqforge.tracking.pyfunc import Seq2SeqModel

mlflow.models.set_model(Seq2SeqModel())
