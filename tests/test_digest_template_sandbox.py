"""Templates and subjects from the config render in Jinja's sandbox: no shell, no secrets.

The payloads are the classic server-side template injection escapes: each reaches
Python internals through an attribute that starts with ``_`` (``__globals__``,
``__class__``, ...) or through ``str.format``. In the sandbox each one is refused
with a ConfigError naming the digest; the API key in the environment never reaches
a message, and no command runs.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from automations.digest.config import DEFAULT_SUBJECT
from automations.digest.render import Renderer
from automations.errors import ConfigError
from tests.digest_support import Clock, SMTPServer, open_digests, write_config
from tests.sandbox_server import SandboxControl
from tests.secret_values import SANDBOX_KEY
from tests.test_digest_delivery import T0, add
from tests.test_digest_render import sample

LONDON = ZoneInfo("Europe/London")
GOLDEN = Path(__file__).parent / "golden"

# {marker} is replaced by a file path: a command that ran would create it.
PAYLOADS = [
    "{{ cycler.__init__.__globals__.os.environ.INCIDENT_IO_API_KEY }}",
    "{{ cycler.__init__.__globals__.os.popen('touch {marker}').read() }}",
    "{{ joiner.__init__.__globals__.os.popen('touch {marker}').read() }}",
    "{{ namespace.__init__.__globals__.os.environ }}",
    "{{ lipsum.__globals__['os'].popen('touch {marker}').read() }}",
    "{{ self.__init__.__globals__.__builtins__.__import__('os').popen('touch {marker}').read() }}",
    "{{ self._TemplateReference__context.cycler.__init__.__globals__.os.environ }}",
    "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "{{ digest.__class__.__init__.__globals__ }}",
    "{{ (digest|attr('__class__')).__init__.__globals__ }}",
    "{{ '{0.__class__.__init__.__globals__}'.format(digest) }}",
    "{{ 'x'.format_map }}{{ digest.figures.__dict__ }}",
]


def _payloads(tmp_path: Path) -> list[tuple[str, Path]]:
    out = []
    for index, payload in enumerate(PAYLOADS):
        marker = tmp_path / f"ran-{index}"
        out.append((payload.replace("{marker}", str(marker)), marker))
    return out


@pytest.fixture(autouse=True)
def _api_key_in_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The daemon runs with its key in the environment: the prize a hostile template wants."""
    monkeypatch.setenv("INCIDENT_IO_API_KEY", SANDBOX_KEY)


@pytest.mark.parametrize("index", range(len(PAYLOADS)))
def test_escapes_in_a_subject_are_refused(tmp_path: Path, index: int) -> None:
    """Each classic escape in the subject is a ConfigError; no command runs, no key shows."""
    payload, marker = _payloads(tmp_path)[index]
    with pytest.raises(ConfigError) as info:
        Renderer("digest", LONDON).render(sample(), payload, 200)
    assert "rendering digest 'daily'" in str(info.value)
    assert "unsafe" in str(info.value) or "not safely callable" in str(info.value)
    assert SANDBOX_KEY not in str(info.value)
    assert not marker.exists()


@pytest.mark.parametrize("suffix", ["txt.j2", "html.j2"])
def test_escapes_in_a_template_file_are_refused(tmp_path: Path, suffix: str) -> None:
    """The same escapes in a templates_dir file (text or HTML) are refused one by one."""
    templates = tmp_path / "templates"
    templates.mkdir()
    for payload, marker in _payloads(tmp_path):
        (templates / f"digest.{suffix}").write_text(f"before {payload} after\n")
        with pytest.raises(ConfigError) as info:
            Renderer("digest", LONDON, templates).render(sample(), DEFAULT_SUBJECT, 200)
        assert SANDBOX_KEY not in str(info.value), payload
        assert not marker.exists(), payload


def test_the_sandbox_keeps_the_golden_files_identical() -> None:
    """The shipped templates render byte for byte as before (tests/golden/) in the sandbox."""
    from jinja2.sandbox import SandboxedEnvironment

    renderer = Renderer("digest", LONDON)
    assert isinstance(renderer.env, SandboxedEnvironment)
    assert isinstance(renderer.subject_env, SandboxedEnvironment)
    rendered = renderer.render(sample(), DEFAULT_SUBJECT, 200)
    assert rendered.html == (GOLDEN / "digest.html").read_text(encoding="utf-8")
    assert rendered.text == (GOLDEN / "digest.txt").read_text(encoding="utf-8")


def test_a_hostile_subject_in_the_config_sends_nothing(
    org: SandboxControl, smtp: SMTPServer, tmp_path: Path
) -> None:
    """End to end: a subject that reads the API key fails the digest, and no mail carries it."""
    add(org, "Checkout latency", age=timedelta(hours=1))
    subject = "subject = \"{{ cycler.__init__.__globals__.os.environ['INCIDENT_IO_API_KEY'] }}\""
    path = write_config(tmp_path, org.base_url, smtp.port, extra=subject)
    runtime, digests = open_digests(path, Clock(T0))
    try:
        with pytest.raises(ConfigError, match=r"rendering digest 'daily': subject: .*unsafe"):
            digests.enqueue("daily", T0)
        assert runtime.ledger.outbox.periods("daily") == []
    finally:
        runtime.close()
    assert smtp.received == []


@pytest.fixture
def org(sandbox: SandboxControl) -> SandboxControl:
    """The seeded catalog, no incidents, the clock at T0."""
    sandbox.reset(incidents=0, now=T0)
    return sandbox
