"""Task kinds: what differs between translation and a chatbot, declared once per kind.

Every stage, the pyfunc and promotion ask the task's kind (`tasks.registry.task_kind(task.kind)`) instead of
branching on a task name; several tasks of one kind (en→de, ko→en) share it. Importing the package
registers the built-in kinds.
"""

from seqforge.core.plugins import import_all

import_all(__name__, __path__)  # every module registers what it defines
