"""Sans-IO BGP session: the RFC 4271 state machine and what it negotiates."""
from .events import *  # noqa: F401,F403
from .fsm import Session as Session, SessionConfig as SessionConfig
from .negotiated import Negotiated as Negotiated, negotiate as negotiate
