"""secret(): base64 SECRET_<NAME> variables as Kestra reads them, a secrets directory, and the masking of what was
revealed."""

from __future__ import annotations

import base64
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
    assert isinstance(secret_backend({}, None), EnvSecrets)
