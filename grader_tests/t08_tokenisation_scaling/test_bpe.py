"""Hidden tests for the byte-pair encoding of t08_tokenisation_scaling (Exercises 1-4, 10 points).

Every expected value is either worked out by hand (the merges of `abababcab` are derived in
`test_train_bpe_by_hand`) or computed here by the reference below, which follows the rules the
notebook states: pairs counted with overlaps, merges left to right without overlap, the most
frequent pair first with ties to the smallest pair, encoding replaying the merges in order. The
inputs differ from the notebook's visible checks.

Merges travel as lists of [a, b, new_id] (dictionaries with tuple keys are rebuilt in the probe),
and whatever a student's function returns is described by the probe (its type, and its items as
plain ints) before anything is compared here.
"""

import torch

from dlcourse.grading import grade_cell, points

CELL = "t08_tokenisation_scaling_{}_check"

PARAGRAPH = (
    "A tokeniser turns text into a sequence of integers. Byte-pair encoding starts from the "
    "bytes of the text and merges the most frequent pair of neighbouring tokens into a new "
    "token, again and again, until the vocabulary has the size that was asked for. The merges "
    "are remembered in the order they were learnt, and encoding a new text replays them in "
    "that order. Decoding joins the bytes of the tokens and reads them as UTF-8 text. Words "
    "that are frequent in the training text become single tokens; rare words are split into "
    "pieces, and a word that was never seen is still encoded, byte by byte if need be."
)
ACCENTS = "Ça coûte déjà trop cher — naïve café, crème brûlée; “quotes” and ☕☕☕ tea. " * 4


# --- the grader's reference (never sent to the student) ---------------------------------------
def ref_pair_counts(ids):
    counts = {}
    for pair in zip(ids[:-1], ids[1:], strict=True):
        counts[pair] = counts.get(pair, 0) + 1
    return counts


def ref_merge(ids, pair, new_id):
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and (ids[i], ids[i + 1]) == tuple(pair):
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def ref_train(text, vocab_size):
    ids, merges = list(text.encode("utf-8")), {}
    for new_id in range(256, vocab_size):
        counts = ref_pair_counts(ids)
        if not counts:
            break
        best = min(counts, key=lambda p: (-counts[p], p))
        ids = ref_merge(ids, best, new_id)
        merges[best] = new_id
    return merges


def ref_encode(text, merges):
    ids = list(text.encode("utf-8"))
    for pair, new_id in merges.items():
        ids = ref_merge(ids, pair, new_id)
    return ids


def as_triples(merges):
    return [[a, b, i] for (a, b), i in merges.items()]


def random_ids(seed, n, high):
    """n ids in [0, high) from a fixed generator: few distinct values, so pairs repeat."""
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(0, high, (n,), generator=gen).tolist()


for _f in (ref_pair_counts, ref_merge, ref_train, ref_encode, as_triples, random_ids):
    _f.__test__ = False  # helpers, not tests


# --- probes (run in the student's process) ------------------------------------------------------
def probe_pair_counts(ns, ids):
    out = ns["pair_counts"](list(ids))
    if not isinstance(out, dict):
        return {"type": type(out).__name__}
    items = []
    for key, value in out.items():
        if not (isinstance(key, tuple) and len(key) == 2):
            return {"type": "dict", "bad_key": repr(key)[:80]}
        items.append([int(key[0]), int(key[1]), int(value)])
    return {"type": "dict", "items": items}


def probe_merge(ns, ids, pair, new_id):
    given = list(ids)
    out = ns["merge"](given, tuple(pair), new_id)
    if not isinstance(out, list):
        return {"type": type(out).__name__, "input_after": [int(i) for i in given]}
    return {"type": "list", "out": [int(i) for i in out], "input_after": [int(i) for i in given]}


def probe_train(ns, text, vocab_size):
    out = ns["train_bpe"](text, vocab_size)
    if not isinstance(out, dict):
        return {"type": type(out).__name__}
    items = []
    for key, value in out.items():
        if not (isinstance(key, tuple) and len(key) == 2):
            return {"type": "dict", "bad_key": repr(key)[:80]}
        items.append([int(key[0]), int(key[1]), int(value)])
    return {"type": "dict", "items": items}


def probe_encode(ns, text, triples):
    merges = {(a, b): i for a, b, i in triples}
    out = ns["encode"](text, merges)
    if not isinstance(out, list):
        return {"type": type(out).__name__}
    return {"type": "list", "out": [int(i) for i in out]}


def probe_decode(ns, ids, triples):
    merges = {(a, b): i for a, b, i in triples}
    try:
        out = ns["decode"](list(ids), merges)
    except UnicodeDecodeError as exc:  # the usual mistake: no errors="replace"
        return {"type": "error", "error": f"UnicodeDecodeError: {exc}"}
    return {"type": type(out).__name__, "out": out if isinstance(out, str) else None}


def probe_round_trip(ns, texts, merge_lists):
    """decode(encode(text)) for each text, with merges learnt from it by the reference."""
    out = []
    for text, triples in zip(texts, merge_lists, strict=True):
        merges = {(a, b): i for a, b, i in triples}
        try:
            back = ns["decode"](ns["encode"](text, merges), merges)
        except UnicodeDecodeError as exc:
            back = f"<UnicodeDecodeError: {exc}>"
        out.append(back if isinstance(back, str) else repr(type(back)))
    return out


# --- helpers that check what came back ----------------------------------------------------------
def _pairs(reply, what):
    assert reply["type"] == "dict", f"{what} returned a {reply['type']}, expected a dict"
    assert "bad_key" not in reply, f"{what} has the key {reply['bad_key']}, expected (id, id) pairs"
    return reply["items"]


def _show(d, limit=8):
    items = list(d.items())
    text = ", ".join(f"{k}: {v}" for k, v in items[:limit])
    return "{" + text + (", ..." if len(items) > limit else "") + "}"


def _check_counts(student, ids, what):
    got = _pairs(student.run(probe_pair_counts, ids=ids), what)
    got = {(a, b): c for a, b, c in got}
    want = ref_pair_counts(ids)
    if got == want:
        return
    if len(ids) < 20:
        raise AssertionError(f"{what} returned {_show(got)}, expected {_show(want)}")
    pair = next(p for p in list(want) + list(got) if got.get(p, 0) != want.get(p, 0))
    raise AssertionError(
        f"{what}: {len(got)} distinct pairs, expected {len(want)}; the pair {pair} is counted "
        f"{got.get(pair, 0)} times, expected {want.get(pair, 0)}"
    )


def _check_merge(student, ids, pair, new_id, what):
    reply = student.run(probe_merge, ids=ids, pair=list(pair), new_id=new_id)
    assert reply["input_after"] == ids, f"{what} changed its input list; return a new list"
    assert reply["type"] == "list", f"{what} returned a {reply['type']}, expected a list"
    want = ref_merge(ids, pair, new_id)
    got = reply["out"]
    if got == want:
        return
    if len(ids) < 20:
        raise AssertionError(f"{what} returned {got}, expected {want}")
    pairs = zip(got, want, strict=False)  # lengths may differ
    k = next((i for i, (g, w) in enumerate(pairs) if g != w), min(len(got), len(want)))
    lo = max(0, k - 3)
    raise AssertionError(
        f"{what}: {len(got)} ids, expected {len(want)}; they first differ at position {k}: "
        f"{got[lo : k + 4]} where {want[lo : k + 4]} was expected (from position {lo})"
    )


def _check_train(student, text, vocab_size, what, want=None):
    got = _pairs(student.run(probe_train, text=text, vocab_size=vocab_size), what)
    want = as_triples(ref_train(text, vocab_size)) if want is None else want
    if got == want:
        return
    assert len(got) == len(want), f"{what} learnt {len(got)} merges, expected {len(want)}"
    k = next(i for i, (g, w) in enumerate(zip(got, want, strict=True)) if g != w)
    raise AssertionError(
        f"{what}: merge number {k + 1} is (pair ({got[k][0]}, {got[k][1]}) -> {got[k][2]}), "
        f"expected (pair ({want[k][0]}, {want[k][1]}) -> {want[k][2]}); the first {k} agree"
    )


# --- Exercise 1: pair_counts (2 points) ---------------------------------------------------------
@grade_cell(CELL.format("pair_counts"))
@points(1)
def test_pair_counts_by_hand(student):
    """Hand-countable cases: 'hello', a run of one id (overlapping pairs), no pairs at all."""
    _check_counts(student, list(b"hello"), "pair_counts(bytes of 'hello')")
    _check_counts(student, [3, 3, 3, 3], "pair_counts([3, 3, 3, 3])")
    _check_counts(student, [], "pair_counts([])")


@grade_cell(CELL.format("pair_counts"))
@points(1)
def test_pair_counts_random(student):
    """Counts of 400 random ids from 6 values (many repeats) and of a paragraph's bytes."""
    _check_counts(student, random_ids(11, 400, 6), "pair_counts(400 random ids in 0..5)")
    _check_counts(student, list(PARAGRAPH.encode("utf-8")), "pair_counts(bytes of a paragraph)")


# --- Exercise 2: merge (2 points) ---------------------------------------------------------------
@grade_cell(CELL.format("merge"))
@points(1)
def test_merge_by_hand(student):
    """A pair at both ends, a run of seven (left to right, no overlap), and no occurrence."""
    _check_merge(student, [1, 2, 3, 1, 2], (1, 2), 9, "merge([1, 2, 3, 1, 2], (1, 2), 9)")
    _check_merge(student, [4] * 7, (4, 4), 260, "merge([4, 4, 4, 4, 4, 4, 4], (4, 4), 260)")
    _check_merge(student, [5, 6, 5], (6, 6), 300, "merge([5, 6, 5], (6, 6), 300)")


@grade_cell(CELL.format("merge"))
@points(1)
def test_merge_random(student):
    """Random ids from 4 values, merging pairs with equal and with different ids."""
    ids = random_ids(12, 300, 4)
    _check_merge(student, ids, (2, 2), 256, "merge(300 random ids in 0..3, (2, 2), 256)")
    _check_merge(student, ids, (1, 3), 257, "merge(300 random ids in 0..3, (1, 3), 257)")


# --- Exercise 3: train_bpe (3 points) -----------------------------------------------------------
@grade_cell(CELL.format("train_bpe"))
@points(1)
def test_train_bpe_by_hand(student):
    """'abababcab' (a=97, b=98, c=99), derived by hand:

    a b a b a b c a b   ab x4 (no tie)                         -> 256 = ab
    Z Z Z c Z           (Z, Z) x2, overlapping                  -> 257 = (256, 256)
    Y Z c Z             (257,256) (256,99) (99,256) once: tie   -> 258 = (99, 256)
    Y Z X               (257,256) (256,258) once: tie           -> 259 = (256, 258)
    Y W                 one pair left                           -> 260 = (257, 259)
    one token: training stops, with 5 merges although 44 were allowed.
    """
    want = [[97, 98, 256], [256, 256, 257], [99, 256, 258], [256, 258, 259], [257, 259, 260]]
    _check_train(student, "abababcab", 258, "train_bpe('abababcab', 258)", want[:2])
    _check_train(student, "abababcab", 300, "train_bpe('abababcab', 300)", want)


@grade_cell(CELL.format("train_bpe"))
@points(1)
def test_train_bpe_english(student):
    """48 merges learnt from an English paragraph match the reference, in order."""
    _check_train(student, PARAGRAPH, 256 + 48, "train_bpe(an English paragraph, 304)")


@grade_cell(CELL.format("train_bpe"))
@points(1)
def test_train_bpe_bytes_and_sizes(student):
    """Text with multi-byte characters (merges of UTF-8 bytes), and vocab_size 256: no merges."""
    _check_train(student, ACCENTS, 256 + 40, "train_bpe(French text with accents and ☕, 296)")
    _check_train(student, PARAGRAPH, 256, "train_bpe(a paragraph, 256)", [])


# --- Exercise 4: encode and decode (3 points) ---------------------------------------------------
HAND_MERGES = [[104, 101, 256], [256, 108, 257], [108, 108, 258]]  # he, hel, ll (in this order)


@grade_cell(CELL.format("encode_decode"))
@points(1)
def test_encode_by_hand_and_reference(student):
    """Merges in the order learnt: with he, hel, ll, 'hello' is [hel, l, o] (not [he, ll, o]);
    then merges learnt here from a paragraph, applied to another text."""
    got = student.run(probe_encode, text="hello", triples=HAND_MERGES)
    assert got["type"] == "list", f"encode returned a {got['type']}, expected a list of ids"
    assert got["out"] == [257, 108, 111], (
        f"encode('hello', merges he -> 256, hel -> 257, ll -> 258) returned {got['out']}, "
        "expected [257, 108, 111]: the merges apply in the order they were learnt"
    )
    merges = ref_train(PARAGRAPH, 256 + 64)
    text = "Encoding a text that was never seen replays the merges in the order they were learnt."
    got = student.run(probe_encode, text=text, triples=as_triples(merges))
    want = ref_encode(text, merges)
    assert got["type"] == "list", f"encode returned a {got['type']}, expected a list of ids"
    assert got["out"] == want, (
        f"encode(an unseen sentence, 64 merges) returned {len(got['out'])} ids beginning "
        f"{got['out'][:12]}, expected {len(want)} beginning {want[:12]}"
    )
    got = student.run(probe_encode, text="", triples=HAND_MERGES)
    assert got["type"] == "list" and got["out"] == [], f"encode('') returned {got}, expected []"


@grade_cell(CELL.format("encode_decode"))
@points(1)
def test_decode_by_hand(student):
    """Tokens made of tokens, an empty list, and a character cut in half (errors='replace')."""
    cases = [
        ([257, 108, 111], "hello"),
        ([256, 32, 258, 33], "he ll!"),
        ([], ""),
        ([226, 152, 32, 104], bytes([226, 152, 32, 104]).decode("utf-8", errors="replace")),
    ]
    for ids, want in cases:
        got = student.run(probe_decode, ids=ids, triples=HAND_MERGES)
        assert got["type"] != "error", (
            f"decode({ids}) raised {got.get('error')}; expected {want!r} "
            "(bytes that are not valid UTF-8 are decoded with errors='replace')"
        )
        assert got["type"] == "str", f"decode({ids}) returned a {got['type']}, expected a str"
        assert got["out"] == want, f"decode({ids}) returned {got['out']!r}, expected {want!r}"


@grade_cell(CELL.format("encode_decode"))
@points(1)
def test_round_trip(student):
    """decode(encode(text)) == text for English, accented French, emoji and Greek (characters
    of 2, 3 and 4 bytes), each with 30 merges learnt from it (by the reference, so that this
    test marks encode and decode alone)."""
    texts = [PARAGRAPH, ACCENTS, "🙂🙃 emoji 🙂🙃 and Ελληνικά κείμενα, Ελληνικά " * 3]
    merge_lists = [as_triples(ref_train(t, 256 + 30)) for t in texts]
    got = student.run(probe_round_trip, texts=texts, merge_lists=merge_lists)
    assert isinstance(got, list) and len(got) == len(texts), "round trip returned no list"
    for name, text, back in zip(["English", "French", "emoji and Greek"], texts, got, strict=True):
        assert back == text, (
            f"decode(encode(text)) differs from the {name} text: {back[:60]!r}... "
            f"instead of {text[:60]!r}..."
        )
