"""secret(): base64 SECRET_<NAME> variables as Kestra reads them, a secrets directory, and the masking of what was
revealed."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest

from orchestrator.core.errors import ExpressionError
from workers.secrets import MASK, EnvSecrets, SecretKeeper, secret_backend


def _b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


def test_a_secret_is_decoded_from_its_base64_variable() -> None:
    assert EnvSecrets({"SECRET_DB_PASSWORD": _b64("s3cr3t!")}).get("DB_PASSWORD") == "s3cr3t!"


def test_a_missing_secret_names_its_key() -> None:
    with pytest.raises(ExpressionError, match="Cannot find secret for key 'NOPE'"):
        EnvSecrets({}).get("NOPE")


def test_a_value_that_is_not_base64_names_its_variable() -> None:
    with pytest.raises(ExpressionError, match="SECRET_RAW"):
        EnvSecrets({"SECRET_RAW": "not base64!"}).get("RAW")


def test_a_name_with_odd_characters_is_refused() -> None:
    with pytest.raises(ExpressionError, match="Invalid secret name"):
        EnvSecrets({}).get("../etc")


def test_revealed_values_and_their_base64_form_are_masked() -> None:
    keeper = SecretKeeper(EnvSecrets({"SECRET_TOKEN": _b64("tok-123456")}))
    value = keeper.reveal("TOKEN")

    text = f"Authorization: Bearer {value}; Basic {_b64(value)}"

    assert keeper.redact(text) == f"Authorization: Bearer {MASK}; Basic {MASK}"


def test_nothing_is_masked_before_a_secret_is_read_and_tiny_values_never_are() -> None:
    keeper = SecretKeeper(EnvSecrets({"SECRET_A": _b64("tok-123456"), "SECRET_B": _b64("on")}))
    assert keeper.redact("tok-123456") == "tok-123456"
    keeper.reveal("B")
    assert keeper.redact("turn it on") == "turn it on"


def test_a_secret_input_is_masked_star_for_star_as_kestra_does() -> None:
    keeper = SecretKeeper(EnvSecrets({}))
    keeper.remember_input("password")

    assert keeper.redact("This is my secret: password") == "This is my secret: ********"


def test_secret_names_are_looked_up_upper_cased_and_wrapped_base64_is_accepted() -> None:
    wrapped = "c2VjcmV0\nVmFsdWU=\n"  # "secretValue", wrapped as `base64` prints long values
    secrets = EnvSecrets({"SECRET_MY_SECRET": wrapped})

    assert secrets.get("my_secret") == "secretValue"


def test_a_secrets_directory_answers_after_the_environment(tmp_path: Path) -> None:
    (tmp_path / "DB_PASSWORD").write_text("from-file\n")  # `echo` adds a newline; it is not part of the value
    (tmp_path / "api_key").write_text("key-in-lower-case")
    (tmp_path / "TOKEN").write_text("file-token")
    backend = secret_backend({"SECRET_TOKEN": _b64("env-token")}, tmp_path)

    assert backend.get("DB_PASSWORD") == "from-file"
    assert backend.get("api_key") == "key-in-lower-case"
    assert backend.get("TOKEN") == "env-token"  # the environment is asked first


def test_the_secrets_directory_refuses_names_that_leave_it_and_reports_a_miss_as_missing(tmp_path: Path) -> None:
    (tmp_path.parent / "outside").write_text("not a secret")
    backend = secret_backend({}, tmp_path)

    with pytest.raises(ExpressionError, match="Invalid secret name"):
        backend.get("../outside")
    with pytest.raises(ExpressionError, match="Cannot find secret for key 'NOPE'"):
        backend.get("NOPE")


def test_without_a_directory_only_the_environment_is_read() -> None:
    backend = secret_backend({"SECRET_TOKEN": _b64("env-token")}, None, "team.a")

    assert backend.get("TOKEN") == "env-token"
    with pytest.raises(ExpressionError, match="Cannot find secret for key 'NOPE'"):
        backend.get("NOPE")


# -- namespace scoping (issue 16) -------------------------------------------------------------------------
def _namespaced(tmp_path: Path) -> Path:
    for namespace, value in (("team.a", "a-own-secret"), ("team.b", "b-own-secret")):
        (tmp_path / namespace).mkdir()
        (tmp_path / namespace / "DB_PASSWORD").write_text(value)
    (tmp_path / "SHARED").write_text("global-file")
    return tmp_path


def test_a_namespace_reads_its_own_folder_of_the_secrets_directory_first(tmp_path: Path) -> None:
    secrets_dir = _namespaced(tmp_path)
    environ = {"SECRET_DB_PASSWORD": _b64("global-env")}

    assert secret_backend(environ, secrets_dir, "team.a").get("DB_PASSWORD") == "a-own-secret"
    assert secret_backend(environ, secrets_dir, "team.b").get("DB_PASSWORD") == "b-own-secret"
    assert secret_backend(environ, secrets_dir, "team.c").get("DB_PASSWORD") == "global-env"


def test_another_namespaces_secret_is_never_read(tmp_path: Path) -> None:
    backend = secret_backend({}, _namespaced(tmp_path), "team.c", global_secrets=False)

    with pytest.raises(ExpressionError, match="Cannot find secret for key 'DB_PASSWORD'"):
        backend.get("DB_PASSWORD")


def test_global_secrets_are_refused_to_a_namespace_not_allowed_them(tmp_path: Path) -> None:
    backend = secret_backend({"SECRET_TOKEN": _b64("env-token")}, _namespaced(tmp_path), "team.a", global_secrets=False)

    assert backend.get("DB_PASSWORD") == "a-own-secret"
    for name in ("TOKEN", "SHARED"):
        with pytest.raises(ExpressionError, match=f"Cannot find secret for key '{name}'"):
            backend.get(name)


# -- masking what filters derive from a secret (issue 16) ---------------------------------------------------
@pytest.mark.parametrize(
    "derived",
    [
        "s3cr3t-Passw0rd"[::-1],  # | reverse
        "s3cr3t-Passw0rd".upper(),  # | upper
        "s3cr3t-Passw0rd".lower(),  # | lower
        "s3cr3t-Passw0rd"[1:],  # | slice(1)
        "s3cr3t-Passw0rd"[:-2],
        "s3cr3t-Passw0rd".swapcase(),
    ],
)
def test_what_a_filter_derives_from_a_secret_is_masked_too(derived: str) -> None:
    keeper = SecretKeeper(EnvSecrets({"SECRET_PW": _b64("s3cr3t-Passw0rd")}))
    keeper.reveal("PW")

    assert keeper.redact(f"value: {derived}.") == f"value: {MASK}."


def test_text_sharing_no_run_of_six_characters_with_a_secret_is_left_alone() -> None:
    keeper = SecretKeeper(EnvSecrets({"SECRET_PW": _b64("s3cr3t-Passw0rd")}))
    keeper.reveal("PW")

    assert keeper.redact("Pass the s3cr3 word") == "Pass the s3cr3 word"


def test_the_keeper_counts_secret_reads() -> None:
    keeper = SecretKeeper(EnvSecrets({"SECRET_PW": _b64("s3cr3t-Passw0rd")}))
    assert keeper.reads == 0
    keeper.reveal("PW")
    keeper.reveal("PW")
    assert keeper.reads == 2


@pytest.mark.parametrize("value", ['pa"ssw0rd-value', "pa\\ssw0rd-value", "line-one\nline-two", "pässwörd-ünïcode"])
def test_masking_json_text_keeps_it_valid_json(value: str) -> None:
    keeper = SecretKeeper(EnvSecrets({"SECRET_PW": _b64(value)}))
    keeper.reveal("PW")

    texts = (json.dumps({"a": value, "b": value[::-1]}, ensure_ascii=False), json.dumps({"a": value, "b": 1}))
    for text in texts:
        masked = json.loads(keeper.redact(text))
        assert value not in json.dumps(masked) and value[::-1] not in str(masked)


def test_what_a_filter_derives_from_a_secret_input_is_masked_too() -> None:
    keeper = SecretKeeper(EnvSecrets({}))
    keeper.remember_input("hunter2-password")

    assert keeper.redact("pw: " + "hunter2-password"[::-1]) == f"pw: {MASK}"
    assert keeper.redact("pw: hunter2-password") == "pw: " + "*" * 16
