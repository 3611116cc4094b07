"""Who leads a round: round-robin over the committee, so every validator leads in turn."""


def leader_of(round_: int, n: int) -> int:
    return round_ % n
