"""Task kinds: what differs between translation and a chatbot, declared once per kind.

Every stage, the registry and promotion ask the task's kind (``task_kind(task.kind)``) instead of
branching on a task name; several tasks of one kind (en→de, ko→en) share it.
"""

from seqforge.tasks.base import TaskKind
from seqforge.tasks.chatbot import Chatbot
from seqforge.tasks.translation import Translation

KINDS: dict[str, TaskKind] = {kind.name: kind for kind in (Translation(), Chatbot())}


def task_kind(name: str) -> TaskKind:
    """The kind called `name` (`translation`, `chatbot`)."""
    return KINDS[name]


__all__ = ["KINDS", "TaskKind", "task_kind"]
