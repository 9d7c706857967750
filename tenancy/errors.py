"""The one error type of the intent layer.

It follows the project's convention (:class:`speaker.errors.ConfigError`): one line
``field: value problem``, e.g. ``endpoints[web1].ipv4: '10.0.0.5' is already used by
endpoint 'web0' in tenant 'blue'``.  Being a ``ConfigError``, the CLI shows it the
same way as a bad node config.
"""
from __future__ import annotations

from l3fab.speaker.errors import ConfigError


class IntentError(ConfigError):
    """A tenant/endpoint change or a state file that cannot be accepted."""
