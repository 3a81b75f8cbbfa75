"""The one place where pylaw reads Luigi's private attributes, each because no public hook exists.

Luigi 3.x is the host (see STYLE.md): every access below is named here with why, so an
upgrade of Luigi has one module to check.

``Register._Register__instance_cache``
    Luigi's instance cache (``X(1) is X(1)``). Luigi exposes only ``clear_instance_cache()``
    and ``disable_instance_cache()``; pylaw's :class:`~pylaw.task.TaskRegister` must look up
    and fill the *same* dict (keyed exactly as ``Register.__call__`` keys it) after
    :meth:`~pylaw.task.Task.modify_param_values` rewrote the values, and must see ``None``
    when the cache is disabled.
"""

from __future__ import annotations

from typing import Any


def instance_cache(task_cls: type) -> dict[tuple, Any] | None:
    """The instance cache ``Register.__call__`` would use for ``task_cls``; ``None`` while disabled.

    Looked up through the metaclass, as Luigi does (``cls.__instance_cache``).
    """
    return getattr(type(task_cls), "_Register__instance_cache", None)
