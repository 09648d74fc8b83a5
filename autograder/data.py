"""Data the kit ships: nothing is downloaded at run time.

``names.txt``: 5,163 distinct first names, lower-cased, from the 1990 US Census name-frequency
lists (public-domain data, as distributed in the MIT-licensed ``names`` package on PyPI).
"""

from __future__ import annotations

from functools import lru_cache
from importlib import resources

import torch
from torch import Tensor

BOUNDARY = "."  # marks the start and the end of a name
ALPHABET = BOUNDARY + "abcdefghijklmnopqrstuvwxyz"
STOI: dict[str, int] = {ch: i for i, ch in enumerate(ALPHABET)}
ITOS: dict[int, str] = {i: ch for ch, i in STOI.items()}


@lru_cache(maxsize=1)
def load_names() -> tuple[str, ...]:
    """All names, in the file's order (most frequent first)."""
    text = resources.files("autograder").joinpath("data/names.txt").read_text(encoding="utf-8")
    return tuple(line.strip() for line in text.splitlines() if line.strip())


@lru_cache(maxsize=1)
def name_stream() -> Tensor:
    """All names, each followed by '.', as one stream of character ids: ``(N,)`` int64."""
    return torch.tensor([STOI[ch] for name in load_names() for ch in name + BOUNDARY], dtype=torch.long)


def name_windows(batch_size: int, context: int, g: torch.Generator) -> tuple[Tensor, Tensor]:
    """``batch_size`` random windows of ``context`` characters of the name stream, and their targets
    (each window shifted by one): ``x, y (B, T)`` int64. Draws one ``randint`` from ``g``."""
    stream = name_stream()
    start = torch.randint(0, stream.shape[0] - context - 1, (batch_size,), generator=g)
    idx = start[:, None] + torch.arange(context)        # (B, T)
    return stream[idx], stream[idx + 1]


def build_dataset(words: list[str] | tuple[str, ...], block_size: int) -> tuple[Tensor, Tensor]:
    """Every (context, next character) pair: ``X (N, block_size)`` int64, ``Y (N,)`` int64."""
    xs: list[list[int]] = []
    ys: list[int] = []
    for word in words:
        context = [STOI[BOUNDARY]] * block_size
        for ch in word + BOUNDARY:
            xs.append(context)
            ys.append(STOI[ch])
            context = context[1:] + [STOI[ch]]
    return torch.tensor(xs, dtype=torch.long), torch.tensor(ys, dtype=torch.long)


@lru_cache(maxsize=4)
def splits(block_size: int, seed: int = 42) -> dict[str, tuple[Tensor, Tensor]]:
    """A shuffled 80/10/10 split of the names into train, dev and test examples."""
    words = list(load_names())
    order = torch.randperm(len(words), generator=torch.Generator().manual_seed(seed)).tolist()
    words = [words[i] for i in order]
    n1, n2 = int(0.8 * len(words)), int(0.9 * len(words))
    return {"train": build_dataset(words[:n1], block_size),
            "dev": build_dataset(words[n1:n2], block_size),
            "test": build_dataset(words[n2:], block_size)}


# ---------------------------------------------------------------- songs, for the CNN assignment
# ``songs.txt``: melodies of traditional and public-domain children's songs as note letters in C
# major (a-g), a comma ending each phrase, written out for the kit.

SONG_END = "."  # ends a song
NOTE_ALPHABET = SONG_END + ",abcdefg"
NOTE_STOI: dict[str, int] = {ch: i for i, ch in enumerate(NOTE_ALPHABET)}
NOTE_ITOS: dict[int, str] = {i: ch for ch, i in NOTE_STOI.items()}


@lru_cache(maxsize=1)
def load_songs() -> dict[str, str]:
    """Song name -> its notes, lower-cased (``"ccggaag,ffeeddc,..."``)."""
    text = resources.files("autograder").joinpath("data/songs.txt").read_text(encoding="utf-8")
    songs: dict[str, str] = {}
    for line in text.splitlines():
        if "|" in line and not line.startswith("#"):
            name, notes = (part.strip() for part in line.split("|", 1))
            songs[name] = notes.lower()
    return songs


@lru_cache(maxsize=1)
def song_tokens() -> Tensor:
    """Every song's notes followed by the end marker, concatenated: ``(N,)`` int64."""
    return torch.tensor([NOTE_STOI[ch] for notes in load_songs().values() for ch in notes + SONG_END],
                        dtype=torch.long)
