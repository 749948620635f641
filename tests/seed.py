"""The seed's two example messages, verbatim (one copy, shared with the demo)."""

from eventbus.demo.seed import SEED_DO_GOOD, SEED_DO_NICE, SEED_MESSAGES

__all__ = ["SEED_DO_GOOD", "SEED_DO_NICE", "SEED_MESSAGES"]
