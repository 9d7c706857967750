"""Sans-IO BGP session: the RFC 4271 state machine and what it negotiates."""
from .events import *  # noqa: F401,F403
from .fsm import Session, SessionConfig  # noqa: F401
from .negotiated import Negotiated, negotiate  # noqa: F401
