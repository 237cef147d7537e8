"""Cuts and the search within a blob: where a blob may be cut, every piece between two cuts, and the
best segmentation of the blob by the joint score of its pieces."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from src.reading.blobs_and_strokes import Blob
from src.reading.paper_and_ink import mnist_style

# Segmentation by recognition: a cut costs CUT_COST, plus CROSSING_COST for each stroke it crosses beyond
# the first (two touching digits usually meet in one stroke; a cut through one digit crosses two or
# more). At most MAX_PER_BLOB digits in one blob, CANDIDATES candidate cuts.
CUT_COST = 1.5
CROSSING_COST = 4.0
MAX_PER_BLOB = 3
CANDIDATES = 8
# A column inked over more than ALONG_STROKE of its blob's height runs along a stroke (a bold 1 in a soft
# scan, a thick stem), not between two digits, which meet in a short stretch: no cut there. A bold 1 cut
# down its length read as "11" (9 of 77 misread UCI scans); from 0.6 to 0.9 UCI reads the same, but at
# 0.8 and below two small close digits joined by grey along their height lost their cut.
ALONG_STROKE = 0.9
# a piece of a blob shorter than SHORT of the blob's height costs up to SHORT_COST (a fragment)
SHORT = 0.75
SHORT_COST = 6.0
# With a digit score (a model fitted with one): each piece also scores DIGIT_SCORE_WEIGHT x the log of
# how much it looks like a digit, so a half digit or two digits in one piece lose to a clean cut. Chosen
# from 0, 0.5, 1 and 2 on numbers composed from the validation split's digits (docs/changelog.md).
DIGIT_SCORE_WEIGHT = 2.0


@dataclass(frozen=True, eq=False)
class Piece:
    """The part of a blob between two of its cuts, as the classifier sees it."""

    index: int  # its place in the batch a picture's pieces are classified in
    image: np.ndarray  # (28, 28) uint8, white on black (`mnist_style`)
    box: tuple[int, int, int, int]  # left, top, right, bottom in the picture
    log_aspect: float  # log(width / height) of its ink
    height: float  # its height as a share of its blob's


def cut_candidates(mask: np.ndarray, limit: int = CANDIDATES) -> list[int]:
    """Columns of a blob where a cut may separate two digits: local minima of the ink per column, away
    from the edges and not along a stroke, the `limit` with the least ink, left to right. None for a blob
    too narrow for two."""
    height, width = mask.shape
    if width < 0.5 * height or width < 6:
        return []
    column = np.convolve(mask.sum(axis=0).astype(float), np.ones(3) / 3, mode="same")
    margin = max(2, int(0.12 * height))
    spacing = max(2, int(0.1 * height))
    inked = mask.sum(axis=0)
    minima = [
        x
        for x in range(margin, width - margin)
        if column[x] <= column[max(0, x - spacing) : x + spacing + 1].min() + 1e-9
        and inked[x] <= ALONG_STROKE * height
    ]
    chosen: list[int] = []
    for x in sorted(minima, key=lambda x: column[x]):
        if all(abs(x - c) >= spacing for c in chosen):
            chosen.append(x)
        if len(chosen) == limit:
            break
    return sorted(chosen)


def crossings(mask: np.ndarray, x: int) -> int:
    """How many separate strokes a vertical cut at column x crosses."""
    column = mask[:, x].astype(np.int8)
    return int(column[0] + np.count_nonzero(np.diff(column) == 1))


def blob_pieces(
    strokes: np.ndarray, blob: Blob, first: int = 0
) -> tuple[list[int], dict[tuple[int, int], Piece]]:
    """A blob's cut positions (its edges included) and every piece between two of them, (i, j) -> the
    piece, numbered from `first` in the order they are found."""
    left, top, right, bottom = blob.box
    own = np.where(blob.mask, strokes[top:bottom, left:right], 0)
    edges = [0, *cut_candidates(blob.mask), blob.mask.shape[1]]
    pieces: dict[tuple[int, int], Piece] = {}
    for i in range(len(edges) - 1):
        for j in range(i + 1, len(edges)):
            piece = _piece(own, blob.mask, (edges[i], edges[j]), blob.box, first + len(pieces))
            if piece is not None:
                pieces[(i, j)] = piece
    return edges, pieces


def _piece(
    own: np.ndarray, mask: np.ndarray, columns: tuple[int, int], box: tuple[int, int, int, int], index: int
) -> Piece | None:
    """The part of a blob between columns a and b as a crop, its box in the picture and its shape."""
    a, b = columns
    rows = np.flatnonzero(mask[:, a:b].any(axis=1))
    cols = np.flatnonzero(mask[:, a:b].any(axis=0))
    if not len(rows):
        return None
    top, bottom, left, right = rows[0], rows[-1] + 1, a + cols[0], a + cols[-1] + 1
    image = mnist_style(own[top:bottom, left:right])
    where = (box[0] + int(left), box[1] + int(top), box[0] + int(right), box[1] + int(bottom))
    return Piece(
        index, image, where, float(np.log((right - left) / (bottom - top))), (bottom - top) / mask.shape[0]
    )


def _likeness(likeness: np.ndarray | None, index: int) -> float:
    """A piece's term for how much it looks like a digit (none without a digit score)."""
    return 0.0 if likeness is None else DIGIT_SCORE_WEIGHT * np.log(max(likeness[index], 1e-6))


def reads_alone(probabilities: np.ndarray, likeness: np.ndarray | None, index: int) -> float:
    """How well a piece reads as some digit, its shape aside: its most likely class's log-probability
    and the digit score's term."""
    return float(np.log(max(probabilities[index].max(), 1e-12)) + _likeness(likeness, index))


def _piece_score(
    p: np.ndarray,
    piece: Piece,
    means: np.ndarray,
    spreads: np.ndarray,
    likeness: np.ndarray | None,
) -> float:
    """How well one piece reads as one digit: the log-probability of its most likely class, the shape
    prior of that class, a cost for standing short of its blob (`height` a share of the blob's) and,
    with a digit score, how much it looks like a digit at all."""
    digit = int(np.argmax(p))
    z = (piece.log_aspect - means[digit]) / spreads[digit]
    short = max(0.0, SHORT - piece.height) / SHORT  # digits of one blob stand about as tall as the blob
    like = _likeness(likeness, piece.index)
    return float(np.log(max(p[digit], 1e-12)) - 0.5 * z * z - SHORT_COST * short + like)


def _best_split(
    mask: np.ndarray,
    edges: list[int],
    pieces: dict[tuple[int, int], Piece],
    probabilities: np.ndarray,
    means: np.ndarray,
    spreads: np.ndarray,
    max_per_blob: int,
    likeness: np.ndarray | None = None,
) -> tuple[list[tuple[int, int]], float, float]:
    """The pieces (i, j) of the best segmentation of one blob and its score: a dynamic programme over
    cut positions. Also how much better that score is than the best with any other number of pieces
    (inf: no other number is possible)."""

    def score(i: int, j: int) -> float:
        if (i, j) not in pieces:
            return -np.inf
        piece = pieces[(i, j)]
        return _piece_score(probabilities[piece.index], piece, means, spreads, likeness)

    n = len(edges) - 1
    # what cutting at each edge costs (none at the blob's left edge)
    cost = [0.0] + [CUT_COST + CROSSING_COST * max(0, crossings(mask, x) - 1) for x in edges[1:-1]]
    # best[j][k]: the best score of the blob's columns up to edge j in k pieces, and where it came from
    best: dict[tuple[int, int], tuple[float, int]] = {(0, 0): (0.0, 0)}  # (0, 0) comes from nowhere
    for j in range(1, n + 1):
        for k in range(1, max_per_blob + 1):
            options = []
            for i in range(j):
                if (i, k - 1) not in best:
                    continue
                options.append((best[(i, k - 1)][0] + score(i, j) - cost[i], i))
            if options:
                value, i = max(options)
                if value > -np.inf:
                    best[(j, k)] = (value, i)
    ends = [(best[(n, k)][0], k) for k in range(1, max_per_blob + 1) if (n, k) in best]
    if not ends:
        return ([(0, n)] if (0, n) in pieces else []), -np.inf, np.inf
    value, k = max(ends)
    others = [v for v, count in ends if count != k]
    margin = value - max(others) if others else np.inf
    split: list[tuple[int, int]] = []
    j = n
    while k > 0:
        i = best[(j, k)][1]
        split.append((i, j))
        j, k = i, k - 1
    return split[::-1], value, margin
