"""The tracker's settings, in one frozen value validated on construction.

Times are milliseconds and whole minutes (the tracker ticks once per minute of stream time).
The defaults are the ones evaluated on CrisisLexT26 by :mod:`firesift.evaluation.trends_eval`.
"""

from __future__ import annotations

from dataclasses import dataclass

from firesift.errors import ConfigError

__all__ = ["HOUR", "MINUTE", "TrendConfig"]

MINUTE = 60_000
HOUR = 60 * MINUTE


@dataclass(frozen=True, slots=True)
class TrendConfig:
    """Tuning of the tracker. Times in milliseconds; the tick is one minute.

    The defaults are the ones evaluated on CrisisLexT26 (see
    :mod:`firesift.evaluation.trends_eval`). ``warmup_ms`` (20 min) is the detection window
    plus 10 minutes of history: no burst is scored before a fresh stream has that much, so its
    steady chatter is not "new", while an event starting after those first minutes (a tracker
    rebuilt at the start of the Ottawa shooting) is found. ``pending_slots`` (a power of two)
    sizes the fixed table of terms seen once (see :mod:`firesift.trends.tracker`).
    """

    detect_window_ms: int = 10 * MINUTE
    lateness_ms: int = 5 * MINUTE
    retention_ms: int = 3 * HOUR
    half_life_ms: int = 6 * HOUR
    warmup_ms: int = 20 * MINUTE
    dedupe_ms: int = 30 * MINUTE
    pending_ms: int = HOUR
    pending_slots: int = 1 << 21
    min_score: float = 4.0
    min_ratio: float = 3.0
    min_volume: int = 3
    min_authors: int = 3
    prior_share: float = 0.0005
    min_prior: float = 0.002
    max_trends: int = 100
    max_story_terms: int = 150
    min_cooccur: int = 2
    link: float = 0.2
    match: float = 0.3
    story_ttl_ms: int = HOUR
    story_min_posts: int = 3
    story_min_terms: int = 2
    story_min_texts: int = 2
    story_profile: int = 10
    story_terms: int = 10
    story_posts: int = 5
    sample_per_minute: int = 2000
    max_terms: int = 500_000
    max_authors_per_minute: int = 1024
    prune_rate: float = 1 / 480

    def __post_init__(self) -> None:
        minute_fields = ("detect_window_ms", "retention_ms", "half_life_ms", "story_ttl_ms")
        for name in minute_fields:
            value = getattr(self, name)
            if value < MINUTE or value % MINUTE:
                raise ConfigError(
                    f"trends.{name} must be a positive whole number of minutes (ms), got {value}"
                )
        if self.lateness_ms < 0 or self.lateness_ms % MINUTE:
            raise ConfigError(
                f"trends.lateness_ms must be whole minutes (ms), got {self.lateness_ms}"
            )
        if self.lateness_ms >= self.detect_window_ms:
            raise ConfigError(
                f"trends.lateness_ms ({self.lateness_ms}) must be shorter than "
                f"trends.detect_window_ms ({self.detect_window_ms})"
            )
        if self.retention_ms < self.detect_window_ms + self.lateness_ms + MINUTE:
            raise ConfigError(
                f"trends.retention_ms ({self.retention_ms}) is shorter than the detection window"
            )
        if self.pending_slots < 1024 or self.pending_slots & (self.pending_slots - 1):
            raise ConfigError(
                f"trends.pending_slots must be a power of two >= 1024, got {self.pending_slots}"
            )
        for name, low in (
            ("min_volume", 2),
            ("min_authors", 2),
            ("sample_per_minute", 1),
            ("max_terms", 1),
            ("story_posts", 1),
        ):
            if getattr(self, name) < low:
                raise ConfigError(
                    f"trends.{name} must be at least {low}, got {getattr(self, name)}"
                )

    @property
    def replay_ms(self) -> int:
        """How much history a rebuild should replay for faithful baselines (4 half-lives)."""
        return 4 * self.half_life_ms
