"""What a Depo dataset's instances are drawn from (`DepoSpec`, the resolved generate params, saved as
raw/depo.json) and the names of its special tokens. No torch, no sampling: params, tokenize and the report
read it too."""

from __future__ import annotations

from dataclasses import dataclass

ANS = "<ans>"
SPEC_FILE = "depo.json"  # the resolved spec beside the Parquet files (raw/)


def query_token(k: int) -> str:
    return f"<query_{k}>"


def default_test_hops(K: int) -> tuple[int, ...]:
    """The powers of 2 up to K, and K itself when it is not one (SPEC 11.1.1: the released test mode; its extra
    hop 24 for K = 32 is left to `generate.test_hops`)."""
    hops = [2**i for i in range(K.bit_length()) if 2**i <= K]
    return tuple(hops if hops[-1] == K else [*hops, K])


@dataclass(frozen=True)
class DepoSpec:
    """What an instance is drawn from (the dataset's resolved generate params; raw/depo.json)."""

    N: int  # largest cycle (training n in 3..N, test n = N)
    K: int  # largest hop
    vocab: int  # V: symbols 1..V inside a word, V+1..2V at its end
    min_len: int  # word length range, in symbols
    max_len: int
    queries: int = 10  # queries per instance: min(queries, n) distinct sources
    test_hops: tuple[int, ...] = ()  # the test hops; () = default_test_hops(K)

    def __post_init__(self) -> None:
        if not self.test_hops:
            object.__setattr__(self, "test_hops", default_test_hops(self.K))
        object.__setattr__(self, "test_hops", tuple(int(k) for k in self.test_hops))

    def to_json(self) -> dict:
        return {"N": self.N, "K": self.K, "vocab": self.vocab, "min_len": self.min_len, "max_len": self.max_len,
                "queries": self.queries, "test_hops": list(self.test_hops)}

    @classmethod
    def from_json(cls, data: dict) -> DepoSpec:
        return cls(**{**data, "test_hops": tuple(data.get("test_hops", ()))})

    def symbols(self) -> tuple[str, ...]:
        """The vocabulary strings after <bos>, <eos>: `<ans>`, `<query_1>` .. `<query_K>`, then symbols 1..2V."""
        return (ANS, *(query_token(k) for k in range(1, self.K + 1)), *(str(s) for s in range(1, 2 * self.vocab + 1)))
