from hypothesis import given
from hypothesis import strategies as st

from service.planning.naming import MAX_NAME_BYTES, delivered_name, delivery_names, file_prefix, manifest_name


def test_raw_feed_names_follow_the_seed():
    assert delivered_name(file_prefix("999-63CHGJokGoxPfSba"), "Ticket", "pdf") == "999-63CHGJokGoxPfSba-Ticket.pdf"


def test_order_names_follow_the_seed():
    prefix = file_prefix("999-63CHGJokGoxPfSba", "6182665224482", "1022")
    assert delivered_name(prefix, "Ticket", "pdf") == "1022_ID_6182665224482_R_999-63CHGJokGoxPfSba_Ticket.pdf"
    assert manifest_name(prefix) == "1022_ID_6182665224482_R_999-63CHGJokGoxPfSba_manifest.json"


def test_separators_dots_and_control_characters_are_made_safe():
    name = delivered_name(file_prefix("r1"), "../../etc/pass\x00wd\\x", "pdf")
    assert "/" not in name and "\\" not in name and ".." not in name and "\x00" not in name
    assert name.startswith("r1-") and name.endswith(".pdf")


def test_long_names_are_bounded_and_stay_distinct():
    a = delivered_name(file_prefix("r1"), "x" * 400 + "a", "pdf")
    b = delivered_name(file_prefix("r1"), "x" * 400 + "b", "pdf")
    assert len(a.encode()) <= MAX_NAME_BYTES and a != b and a.endswith(".pdf")


def test_same_name_twice_is_numbered_not_overwritten():
    assert delivery_names("r-", [("a", "pdf"), ("a", "pdf"), ("b", "png")]) == ["r-a.pdf", "r-a-2.pdf", "r-b.png"]


def test_a_numbered_name_skips_numbers_already_taken():
    names = delivery_names("r-", [("Ticket", "pdf"), ("Ticket", "pdf"), ("Ticket-2", "pdf")])
    assert names == ["r-Ticket.pdf", "r-Ticket-2.pdf", "r-Ticket-2-2.pdf"]


def test_a_file_named_like_the_manifest_does_not_take_its_name():
    [name] = delivery_names("r-", [("manifest", "json")])
    assert name == "r-manifest-2.json" and name != manifest_name("r-")


@given(
    st.lists(
        st.tuples(
            st.sampled_from(["Ticket", "ticket", "Ticket-2", "manifest", "Manifest", "a/b", "a_b", "x" * 300, ""])
            | st.text(max_size=30),
            st.sampled_from(["pdf", "json", "JSON", ""]) | st.text(max_size=5),
        ),
        max_size=12,
    ),
    st.sampled_from([file_prefix("r1"), file_prefix("r1", "o1", "1022")]),
)
def test_names_in_a_delivery_are_always_distinct_and_never_the_manifests(files, prefix):
    names = delivery_names(prefix, files)
    folded = [n.casefold() for n in names]
    assert len(set(folded)) == len(names)
    assert manifest_name(prefix).casefold() not in folded
    assert names == delivery_names(prefix, files)  # deterministic: a repeat overwrites, never piles up
    assert all(len(n.encode()) <= MAX_NAME_BYTES for n in names)


@given(st.text(max_size=300), st.text(max_size=20), st.text(max_size=80), st.text(max_size=80))
def test_any_input_gives_a_safe_deterministic_name(name, ext, recipe, number):
    prefix = file_prefix(recipe or "r", "o1", number)
    result = delivered_name(prefix, name, ext)
    assert result == delivered_name(prefix, name, ext)
    assert len(result.encode()) <= MAX_NAME_BYTES
    assert "/" not in result and "\\" not in result and ".." not in result
    assert not any(ord(c) < 32 or ord(c) == 127 for c in result)
