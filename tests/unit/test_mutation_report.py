"""The mutation report's one mechanical verdict: a survivor whose only change is the letter case of
SQL outside quotes is equivalent (Postgres reads keywords and unquoted identifiers in any case).
Anything else that changed must stay a survivor, to be killed or explained by hand."""

import pytest

from tests.mutation_report import sql_case_only

ORIG = """def x_f__mutmut_orig(conn, ws):
    return conn.execute("SELECT seq FROM workspaces WHERE id = %s AND status = 'open'", (ws,))
"""


def mutant(statement: str) -> str:
    return ORIG.replace("x_f__mutmut_orig", "x_f__mutmut_7").replace(
        "SELECT seq FROM workspaces WHERE id = %s AND status = 'open'", statement
    )


@pytest.mark.parametrize(
    "statement",
    [
        "select seq from workspaces where id = %s and status = 'open'",
        "SELECT SEQ FROM WORKSPACES WHERE ID = %s AND STATUS = 'open'",
    ],
)
def test_keywords_and_unquoted_names_in_another_case_are_equivalent(statement):
    assert sql_case_only(ORIG, mutant(statement))


@pytest.mark.parametrize(
    "statement",
    [
        "SELECT seq FROM workspaces WHERE id = %s AND status = 'OPEN'",  # a value
        "SELECT seq FROM workspaces WHERE id = %S AND status = 'open'",  # a placeholder
        "XXSELECT seq FROM workspaces WHERE id = %s AND status = 'open'XX",  # not case alone
        "SELECT seq FROM workspaces WHERE id = %s OR status = 'open'",  # another word
    ],
)
def test_a_change_of_values_placeholders_or_words_is_not(statement):
    assert not sql_case_only(ORIG, mutant(statement))


def test_a_quoted_identifier_an_fstring_expression_and_plain_text_keep_their_case():
    quoted = "def f():\n    return q('SELECT \"Order\" FROM t')\n"
    assert not sql_case_only(quoted, quoted.replace('"Order"', '"ORDER"'))
    fstr = 'def f():\n    return q(f"SET LOCAL ROLE {ROLE}")\n'
    assert sql_case_only(fstr, fstr.replace("SET LOCAL ROLE", "set local role"))
    assert not sql_case_only(fstr, fstr.replace("{ROLE}", "{role}"))
    message = 'def f():\n    raise Invalid("ticket expired")\n'
    assert not sql_case_only(message, message.replace("ticket expired", "TICKET EXPIRED"))


def test_a_piece_of_a_statement_counts_and_a_message_does_not():
    piece = (
        'def f():\n    return q("CREATE TABLE t (" " version text PRIMARY KEY, at timestamptz NOT NULL)")\n'
    )
    assert sql_case_only(piece, piece.replace("version text PRIMARY KEY", "version text primary key"))
    case = 'def f():\n    return q(" ELSE EXCLUDED.email_verified END," " x")\n'  # a CASE's tail
    assert sql_case_only(
        case, case.replace("ELSE EXCLUDED.email_verified END", "else excluded.email_verified end")
    )
    condition = 'def f():\n    return ["o.id = %(task)s", "NOT o.deleted"]\n'  # a WHERE's piece
    assert sql_case_only(condition, condition.replace("NOT o.deleted", "not O.DELETED"))
    message = 'def f():\n    raise Invalid("limit: must be between 1 and 200, set from the query")\n'
    assert not sql_case_only(message, message.replace("limit: must", "LIMIT: MUST"))


def test_a_change_outside_strings_is_not():
    assert not sql_case_only(ORIG, ORIG.replace("(ws,)", "(None,)"))
    assert not sql_case_only(ORIG, ORIG)  # nothing changed: not a mutant this verdict is for
