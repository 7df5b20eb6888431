"""Every known SAML attack is refused at the ACS (issue 5 point 3).

Each refusal: a 4xx with a short reason code, one ``authentication.sso_failed`` event with
that code, and nothing else written (no profile, code, replay row, user, membership or
outbox message).
"""

from __future__ import annotations

import copy
import datetime as dt
import logging
import uuid

import pytest
from lxml import etree

from sso.saml_idp import SAML, SAMLP, TestIdp, decode, encode
from sso.sso_helpers import (
    REDIRECT_URI,
    Setup,
    allow_idp_initiated,
    counts,
    events_of,
    post_acs,
    start_sign_in,
)

DS = "http://www.w3.org/2000/09/xmldsig#"
NS = {"samlp": SAMLP, "saml": SAML, "ds": DS}


def assert_refused(http, setup: Setup, engine, saml_response: str, reason: str, status=400):  # type: ignore[no-untyped-def]
    before = counts(engine)
    failed_before = len(events_of(engine, "authentication.sso_failed", setup.connection_id))
    response = post_acs(http, setup, saml_response)
    assert response.status_code == status, response.text
    assert response.json()["code"] == reason
    failed = events_of(engine, "authentication.sso_failed", setup.connection_id)
    assert len(failed) == failed_before + 1
    assert failed[-1]["error"]["code"] == reason
    assert failed[-1]["sso"] == {
        "organization_id": setup.org_id,
        "connection_id": setup.connection_id,
        "session_id": None,
    }
    assert counts(engine) == before  # nothing else written
    return response


def valid(setup: Setup, http, **kwargs):  # type: ignore[no-untyped-def]
    request_id = start_sign_in(http, setup.connection_id)
    return setup.idp.response(
        acs_url=setup.acs_url, audience=setup.sp_entity_id, in_response_to=request_id, **kwargs
    )


# --- signatures -----------------------------------------------------------------------


def test_unsigned_response_is_refused(http, setup: Setup, engine) -> None:
    assert_refused(http, setup, engine, valid(setup, http, sign_assertion=False), "unsigned")


def test_response_signed_by_another_key_is_refused(http, setup: Setup, engine) -> None:
    impostor = TestIdp(entity_id=setup.idp.entity_id)  # same issuer, its own key
    request_id = start_sign_in(http, setup.connection_id)
    forged = impostor.response(
        acs_url=setup.acs_url, audience=setup.sp_entity_id, in_response_to=request_id
    )
    assert_refused(http, setup, engine, forged, "invalid_signature")


def test_tampered_name_id_breaks_the_signature(http, setup: Setup, engine) -> None:
    xml = decode(valid(setup, http, name_id="ada@example.com"))
    tampered = xml.replace(">ada@example.com<", ">admin@example.com<")
    assert_refused(http, setup, engine, encode(tampered), "invalid_signature")


def test_sha1_is_refused_unless_the_connection_allows_it(http, setup: Setup, engine) -> None:
    assert_refused(http, setup, engine, valid(setup, http, sha1=True), "sha1_forbidden")
    allow_idp_initiated(http, setup.connection_id, allow_sha1=True)
    assert post_acs(http, setup, valid(setup, http, sha1=True)).status_code == 302


# --- signature wrapping (XSW1-XSW8, Somorovsky et al. 2012) ----------------------------


def _parts(saml_response: str):  # type: ignore[no-untyped-def]
    root = etree.fromstring(decode(saml_response).encode())
    assertion = root.find("saml:Assertion", NS)
    return root, assertion


def _evil(assertion):  # type: ignore[no-untyped-def]
    evil = copy.deepcopy(assertion)
    evil.set("ID", "_evil" + uuid.uuid4().hex)
    for sig in evil.findall("ds:Signature", NS):
        evil.remove(sig)
    evil.find("saml:Subject/saml:NameID", NS).text = "admin@example.com"
    return evil


def _xsw_response_level(variant: int, signed_response: str) -> str:
    """XSW1: the signed Response moved inside the Signature (ds:Object) of an evil one;
    XSW2: the signed Response as a detached sibling of the evil one's Signature."""
    root, assertion = _parts(signed_response)
    original = copy.deepcopy(root)
    signature = root.find("ds:Signature", NS)
    original.remove(original.find("ds:Signature", NS))
    root.set("ID", "_evilresp" + uuid.uuid4().hex)
    root.replace(assertion, _evil(assertion))
    if variant == 1:
        obj = etree.SubElement(signature, f"{{{DS}}}Object")
        obj.append(original)
    else:
        signature.addnext(original)
    return encode(etree.tostring(root).decode())


def _xsw_assertion_level(variant: int, signed: str) -> str:
    root, assertion = _parts(signed)
    evil = _evil(assertion)
    signature = assertion.find("ds:Signature", NS)
    if variant == 3:  # evil assertion before the signed one
        assertion.addprevious(evil)
    elif variant == 4:  # the signed assertion inside the evil one
        root.replace(assertion, evil)
        evil.append(assertion)
    elif variant == 5:  # the signature moved to the evil assertion, original unsigned
        root.replace(assertion, evil)
        assertion.remove(signature)
        evil.insert(1, signature)
        root.append(assertion)
    elif variant == 6:  # original inside the Signature moved to the evil assertion
        root.replace(assertion, evil)
        assertion.remove(signature)
        evil.insert(1, signature)
        etree.SubElement(signature, f"{{{DS}}}Object").append(assertion)
    elif variant == 7:  # original inside an Extensions element, evil assertion in its place
        root.replace(assertion, evil)
        ext = etree.Element(f"{{{SAMLP}}}Extensions")
        ext.append(assertion)
        root.find("saml:Issuer", NS).addnext(ext)
    elif variant == 8:  # original (unsigned copy) inside the evil assertion's Signature Object
        root.replace(assertion, evil)
        assertion.remove(signature)
        evil.insert(1, signature)
        etree.SubElement(signature, f"{{{DS}}}Object").append(assertion)
        assertion.set("ID", assertion.get("ID"))
    return encode(etree.tostring(root).decode())


@pytest.mark.parametrize("variant", [1, 2])
def test_xsw_response_wrapping_is_refused(variant: int, http, setup: Setup, engine) -> None:
    signed = valid(setup, http, sign_assertion=False, sign_response=True)
    attack = _xsw_response_level(variant, signed)
    assert_refused(http, setup, engine, attack, "signature_wrapping")


@pytest.mark.parametrize("variant", [3, 4, 5, 6, 7, 8])
def test_xsw_assertion_wrapping_is_refused(variant: int, http, setup: Setup, engine) -> None:
    attack = _xsw_assertion_level(variant, valid(setup, http))
    assert_refused(http, setup, engine, attack, "assertion_count")


def test_unsigned_evil_assertion_next_to_signed_one_is_refused(http, setup, engine) -> None:
    """The brief's XSW: a signed response whose body gains an unsigned evil assertion."""
    root, assertion = _parts(valid(setup, http, sign_response=True))
    assertion.addnext(_evil(assertion))
    assert_refused(http, setup, engine, encode(etree.tostring(root).decode()), "assertion_count")


def test_signature_referencing_another_element_is_refused(http, setup, engine) -> None:
    """Only the evil assertion left, carrying the signature of the original (ref mismatch)."""
    root, assertion = _parts(valid(setup, http))
    evil = _evil(assertion)
    evil.insert(1, assertion.find("ds:Signature", NS))
    root.replace(assertion, evil)
    attack = encode(etree.tostring(root).decode())
    assert_refused(http, setup, engine, attack, "signature_wrapping")


def test_two_signed_assertions_are_refused(http, setup: Setup, engine) -> None:
    request_id = start_sign_in(http, setup.connection_id)
    idp = setup.idp
    parts = [
        idp.sign(
            idp.assertion_xml(
                acs_url=setup.acs_url,
                audience=setup.sp_entity_id,
                name_id=f"user{i}@example.com",
                attributes={},
                in_response_to=request_id,
            )
        )
        for i in range(2)
    ]
    xml = idp.response_xml(
        parts[0] + parts[1], destination=setup.acs_url, in_response_to=request_id
    )
    assert_refused(http, setup, engine, encode(xml), "assertion_count")


def test_comment_split_name_id_is_refused(http, setup: Setup, engine) -> None:
    """CVE-2017-11427: ``user@evil.com<!---->.example.com`` signs as the full value; a
    parser that stops at the comment reads ``user@evil.com``. Refused outright."""
    request_id = start_sign_in(http, setup.connection_id)
    idp = setup.idp
    assertion = idp.sign(
        idp.assertion_xml(
            acs_url=setup.acs_url,
            audience=setup.sp_entity_id,
            name_id="user@evil.com.example.com",
            attributes={"email": ["user@evil.com.example.com"]},
            in_response_to=request_id,
        )
    )
    injected = assertion.replace("user@evil.com.example.com<", "user@evil.com<!---->.example.com<")
    assert "<!---->" in injected
    xml = idp.response_xml(injected, destination=setup.acs_url, in_response_to=request_id)
    assert_refused(http, setup, engine, encode(xml), "comment_in_assertion")


# --- replay, InResponseTo, IdP-initiated ----------------------------------------------


def test_replay_is_refused(http, setup: Setup, engine) -> None:
    response = valid(setup, http)
    assert post_acs(http, setup, response).status_code == 302
    assert_refused(http, setup, engine, response, "replayed")


def test_concurrent_posts_of_one_assertion_sign_in_once(sso_live, http, setup: Setup) -> None:
    """IdP-initiated, so that only the replay table stands between the two: the second
    insert of the assertion id waits for the first transaction, then finds it."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    allow_idp_initiated(http, setup.connection_id)
    for _ in range(3):
        response = setup.idp.response(acs_url=setup.acs_url, audience=setup.sp_entity_id)

        def post(_: int, response: str = response) -> httpx.Response:
            with httpx.Client(base_url=sso_live.url, timeout=20) as client:
                return post_acs(client, setup, response)

        with ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(post, range(4)))
        assert sorted(a.status_code for a in answers) == [302, 400, 400, 400]
        assert {a.json()["code"] for a in answers if a.status_code == 400} == {"replayed"}


def test_expired_authn_request_is_refused_and_kept(http, setup: Setup, engine) -> None:
    """The AuthnRequest is deleted as it is read; a refusal rolls the deletion back."""
    import sqlalchemy as sa

    response = valid(setup, http)
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                "UPDATE sso_authn_requests SET expires_at = now() - interval '1 minute' "
                "WHERE connection_id = :c"
            ),
            {"c": setup.connection_id},
        )
    assert_refused(http, setup, engine, response, "authn_request_expired")
    with engine.connect() as conn:
        left = conn.execute(
            sa.text("SELECT count(*) FROM sso_authn_requests WHERE connection_id = :c"),
            {"c": setup.connection_id},
        ).scalar_one()
    assert left == 1


def test_mismatched_in_response_to_is_refused(http, setup: Setup, engine) -> None:
    start_sign_in(http, setup.connection_id)
    forged = setup.idp.response(
        acs_url=setup.acs_url, audience=setup.sp_entity_id, in_response_to="saml_req_unknown"
    )
    assert_refused(http, setup, engine, forged, "in_response_to_mismatch")


def test_in_response_to_of_another_connection_is_refused(http, sso_sdk, setup, engine) -> None:
    from sso.sso_helpers import create_connection

    other = create_connection(sso_sdk, TestIdp(), setup.org_id)
    request_id = start_sign_in(http, other.id)
    response = setup.idp.response(
        acs_url=setup.acs_url, audience=setup.sp_entity_id, in_response_to=request_id
    )
    assert_refused(http, setup, engine, response, "in_response_to_mismatch")


def test_missing_in_response_to_is_refused_without_idp_initiated(http, setup, engine) -> None:
    unsolicited = setup.idp.response(acs_url=setup.acs_url, audience=setup.sp_entity_id)
    assert_refused(http, setup, engine, unsolicited, "idp_initiated_not_allowed", 403)


# --- audience, recipient, destination, time --------------------------------------------


def test_wrong_audience_is_refused(http, setup: Setup, engine) -> None:
    request_id = start_sign_in(http, setup.connection_id)
    response = setup.idp.response(
        acs_url=setup.acs_url, audience="https://other-sp.test", in_response_to=request_id
    )
    assert_refused(http, setup, engine, response, "wrong_audience")


def test_wrong_recipient_is_refused(http, setup: Setup, engine) -> None:
    response = valid(setup, http, recipient=setup.acs_url + "/../evil")
    assert_refused(http, setup, engine, response, "wrong_recipient")


def test_wrong_destination_is_refused(http, setup: Setup, engine) -> None:
    response = valid(setup, http, destination=setup.acs_url + "x")
    assert_refused(http, setup, engine, response, "wrong_destination")


def test_expired_assertion_is_refused(http, setup: Setup, engine) -> None:
    past = dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)
    assert_refused(http, setup, engine, valid(setup, http, now=past), "expired")


def test_idp_clock_ahead_within_the_skew_is_accepted(http, setup: Setup) -> None:
    ahead = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=90)  # NotBefore 60 s ahead
    assert post_acs(http, setup, valid(setup, http, now=ahead)).status_code == 302


def test_skew_is_bounded_below_python3_saml_drift(http, setup: Setup, engine) -> None:
    """NotBefore 3.5 minutes ahead: inside python3-saml's fixed 300 s, outside our 120 s."""
    ahead = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=4)
    assert_refused(http, setup, engine, valid(setup, http, now=ahead), "not_yet_valid")


def test_not_yet_valid_assertion_is_refused(http, setup: Setup, engine) -> None:
    future = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=10)
    assert_refused(http, setup, engine, valid(setup, http, now=future), "not_yet_valid")


# --- parsing: entities, size, garbage -------------------------------------------------


def test_xxe_is_refused(http, setup: Setup, engine) -> None:
    xml = decode(valid(setup, http))
    doctype = '<!DOCTYPE r [<!ENTITY xxe SYSTEM "file:///etc/passwd">]>'
    attack = doctype + xml.replace("ada@example.com</saml:NameID>", "&xxe;</saml:NameID>", 1)
    assert_refused(http, setup, engine, encode(attack), "dtd_forbidden")


def test_billion_laughs_is_refused(http, setup: Setup, engine) -> None:
    entities = '<!ENTITY lol "lol">' + "".join(
        f'<!ENTITY lol{i} "{("&lol" + (str(i - 1) if i > 1 else "") + ";") * 10}">'
        for i in range(1, 10)
    )
    xml = decode(valid(setup, http))
    attack = f"<!DOCTYPE r [{entities}]>" + xml.replace("Ada<", "&lol9;<", 1)
    assert_refused(http, setup, engine, encode(attack), "dtd_forbidden")


def test_oversize_response_is_refused(http, setup: Setup, engine) -> None:
    huge = valid(setup, http, attributes={"padding": ["x" * 400_000]})
    assert_refused(http, setup, engine, huge, "response_too_large", 413)


def test_garbage_is_refused_without_a_500(http, setup: Setup, engine) -> None:
    assert_refused(http, setup, engine, "%%%not-base64%%%", "malformed_response")
    assert_refused(http, setup, engine, encode("<notxml"), "malformed_response")


def test_refusals_never_log_the_assertion(http, setup: Setup, engine, caplog) -> None:
    marker = "marker-" + uuid.uuid4().hex
    caplog.set_level(logging.DEBUG)
    response = valid(setup, http, sign_assertion=False, name_id=f"{marker}@example.com")
    assert_refused(http, setup, engine, response, "unsigned")
    assert marker not in caplog.text
    assert response not in caplog.text


def test_idp_initiated_is_accepted_only_where_allowed(http, setup: Setup) -> None:
    allow_idp_initiated(http, setup.connection_id)
    unsolicited = setup.idp.response(acs_url=setup.acs_url, audience=setup.sp_entity_id)
    response = post_acs(http, setup, unsolicited)
    assert response.status_code == 302
    assert response.headers["location"].startswith(REDIRECT_URI + "?code=")


def test_concurrent_first_sign_ins_of_one_person_both_succeed(
    sso_live, http, setup: Setup, engine
) -> None:
    """Two tabs, or a retry: two valid responses for a person never seen before, posted at
    once, both sign in (never a 500 on the profile's unique key) and share one profile."""
    from concurrent.futures import ThreadPoolExecutor

    import httpx
    import sqlalchemy as sa

    allow_idp_initiated(http, setup.connection_id)
    for attempt in range(3):
        email = f"twice-{attempt}-{setup.connection_id[-6:].lower()}@example.com"
        responses = [
            setup.idp.response(acs_url=setup.acs_url, audience=setup.sp_entity_id, name_id=email)
            for _ in range(2)
        ]

        def post(response: str) -> httpx.Response:
            with httpx.Client(base_url=sso_live.url, timeout=20) as client:
                return post_acs(client, setup, response)

        with ThreadPoolExecutor(2) as pool:
            answers = list(pool.map(post, responses))
        assert [a.status_code for a in answers] == [302, 302], [a.text for a in answers]
        with engine.connect() as conn:
            profiles = conn.execute(
                sa.text(
                    "SELECT count(*) FROM sso_profiles WHERE connection_id = :c AND email = :e"
                ),
                {"c": setup.connection_id, "e": email},
            ).scalar_one()
        assert profiles == 1


def test_sign_ins_are_counted_by_outcome_and_reason(http, setup: Setup, engine) -> None:
    """Issue 7 point 5: /metrics counts SAML sign-ins by outcome and refusal reason."""

    def count(outcome: str, reason: str) -> float:
        wanted = f'idp_sync_saml_signins_total{{outcome="{outcome}",reason="{reason}"}} '
        for line in http.get("/metrics").text.splitlines():
            if line.startswith(wanted):
                return float(line.rsplit(" ", 1)[1])
        return 0.0

    refused, accepted = count("refused", "unsigned"), count("accepted", "")
    assert_refused(http, setup, engine, valid(setup, http, sign_assertion=False), "unsigned")
    assert post_acs(http, setup, valid(setup, http)).status_code == 302
    assert count("refused", "unsigned") == refused + 1
    assert count("accepted", "") == accepted + 1
