"""Model families by name (`model.arch`): fairseq-style `@register_family("name")` on a `Seq2Seq` subclass.

A family brings its config schema (`config`), its builder (the class), its one-line description and the
widths the study scales; experiments validate `model:` against the union of registered configs. Adding a
family is one module that registers itself plus one `conf/experiments/<name>.yaml`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, Literal, TypeVar, Union, get_args, get_origin

from pydantic import Field
from torch import nn

from seqforge.config.base import TAGS, ConfigError
from seqforge.models.base import FamilyCfg, Seq2Seq

FAMILIES: dict[str, type[Seq2Seq]] = {}
M = TypeVar("M", bound=type[Seq2Seq])


def register_family(name: str) -> Callable[[M], M]:
    """Class decorator: `cls` builds models of family `name`; `cls.config.arch` must be `Literal[name]`."""

    def add(cls: M) -> M:
        arch = cls.config.model_fields["arch"].annotation
        if get_origin(arch) is not Literal or get_args(arch) != (name,):
            raise TypeError(f"{cls.config.__name__}.arch must be Literal[{name!r}] to register family {name!r}")
        if name in FAMILIES and FAMILIES[name] is not cls:
            raise TypeError(f"model family {name!r} is registered already, by {FAMILIES[name].__module__}")
        FAMILIES[name] = cls
        TAGS.add(name)
        return cls

    return add


def family(name: str) -> type[Seq2Seq]:
    """The registered family `name`; a `ConfigError` lists the registered ones."""
    if name not in FAMILIES:
        raise ConfigError(f"model.arch: unknown model family {name!r} (registered: {', '.join(FAMILIES)})")
    return FAMILIES[name]


def model_union(configs: tuple[type[FamilyCfg], ...]) -> Any:
    """The union of family configs, told apart by `arch`."""
    # `Union[...]` over a tuple known only at run time: the `X | Y` spelling cannot take one
    return configs[0] if len(configs) == 1 else Annotated[Union[configs], Field(discriminator="arch")]  # noqa: UP007


def build_model(cfg: FamilyCfg, src_vocab: int, tgt_vocab: int) -> Seq2Seq:
    """Instantiate the model `cfg` describes for the given vocabulary sizes."""
    if cfg.shared_embeddings and src_vocab != tgt_vocab:
        raise ConfigError(
            f"model.shared_embeddings: needs one joint vocabulary (tokenizer.joint: true); "
            f"got source {src_vocab} and target {tgt_vocab} entries"
        )
    return family(cfg.arch)(cfg, src_vocab, tgt_vocab)


def count_parameters(model: nn.Module) -> int:
    """Trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
