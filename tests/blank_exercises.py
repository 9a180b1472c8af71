"""What a blank release notebook may raise when it runs top to bottom: only what its blank
exercises explain (their NotImplementedError, a NameError for what they would have defined, a
self-check's FAIL). Anything else, a KeyError in a later cell say, is a defect of the notebook.
"""

BLANK_EXERCISE_ERRORS = ("NotImplementedError", "NameError", "AssertionError")


def unexplained_errors(nb, also_allowed: tuple[str, ...] = ()) -> list[str]:
    """Cell errors that a blank exercise cannot explain, as `cell i: Name: message`."""
    allowed = BLANK_EXERCISE_ERRORS + also_allowed
    return [
        f"cell {i}: {out.ename}: {out.evalue}"
        for i, cell in enumerate(nb.cells)
        if cell.cell_type == "code"
        for out in cell.get("outputs", [])
        if out.output_type == "error" and out.ename not in allowed
    ]
