"""The top-level templates/ folder ships inside the wheel, and an installed package renders
from it: digests byte for byte as the golden files, notifications for every channel type."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

# Run in the unpacked wheel with -I (no PYTHONPATH, no current folder): the package comes
# from the wheel, its dependencies and the tests' sample data from this environment.
SCRIPT = """
import json, sys
from pathlib import Path
unpacked, repo = Path(sys.argv[1]), Path(sys.argv[2])
sys.path.insert(0, str(unpacked))
sys.path.append(str(repo))
import automations
from automations.template_files import shipped_templates
from automations.digest.config import DEFAULT_SUBJECT
from automations.digest.render import Renderer
from automations.notify.render import NoticeTemplates
from tests.channel_support import hostile_notice
from tests.test_digest_render import LONDON, sample

digest = Renderer("digest", LONDON).render(sample(), DEFAULT_SUBJECT, 200)
notice = hostile_notice()
print(json.dumps({
    "package": automations.__file__,
    "templates": str(shipped_templates()),
    "digest_text": digest.text,
    "digest_html": digest.html,
    "email_html": NoticeTemplates("email", "ops").render("html", notice),
    "apprise_md": NoticeTemplates("apprise", "ops").render("md", notice),
    "escalation_title": NoticeTemplates("escalation", "ops").render("title", notice),
}))
"""


def test_the_wheel_carries_templates_and_renders_from_them(tmp_path: Path) -> None:
    """templates/ is automations/templates/ in the wheel; an import from it renders both kinds."""
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(REPO)],
        check=True, env=env, capture_output=True,
    )  # fmt: skip
    (wheel,) = tmp_path.glob("automations-*.whl")
    shipped = sorted(
        f"automations/templates/{p.relative_to(REPO / 'templates').as_posix()}"
        for p in (REPO / "templates").rglob("*.j2")
    )
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
        archive.extractall(tmp_path / "unpacked")
    assert "automations/templates/digest.html.j2" in shipped
    assert "automations/templates/notify/email.html.j2" in shipped
    assert sorted(n for n in names if n.startswith("automations/templates/")) == shipped
    assert not [n for n in names if n.startswith("templates/")]

    result = subprocess.run(
        [sys.executable, "-I", "-c", SCRIPT, str(tmp_path / "unpacked"), str(REPO)],
        capture_output=True, text=True, timeout=60, cwd=tmp_path,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["package"] == str(tmp_path / "unpacked" / "automations" / "__init__.py")
    assert out["templates"] == str(tmp_path / "unpacked" / "automations" / "templates")
    assert out["digest_text"] == (REPO / "tests" / "golden" / "digest.txt").read_text()
    assert out["digest_html"] == (REPO / "tests" / "golden" / "digest.html").read_text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in out["email_html"]
    assert "<script>" not in out["email_html"]
    assert "**INC-42** &lt;script>" in out["apprise_md"]
    assert out["escalation_title"].startswith("INC-42 <script>")  # a title is plain text
