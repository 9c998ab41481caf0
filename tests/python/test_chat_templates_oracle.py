"""Oracle: every chat template in ../shared/templates (and our feature templates) renders
byte-identically with Python jinja2 (configured as HF transformers does) and with edgellm's
interpreter, for several conversations; or both raise."""
import os
import pathlib
import subprocess

import pytest

jinja2 = pytest.importorskip("jinja2", reason="jinja2 (PyPI) is the oracle for chat templates")

from chat_oracle_util import (  # noqa: E402
    chat_render_tool, contexts, hf_environment, leniency_for, render_ours, render_python)

HERE = pathlib.Path(__file__).parent
SHARED = pathlib.Path(os.environ.get("EDGELLM_SHARED", HERE / "../../../shared"))


def template_files():
    files = sorted((SHARED / "templates").glob("*.jinja")) + sorted((HERE / "templates").glob("*.jinja"))
    return files


TEMPLATES = template_files()
CONTEXTS = contexts()


@pytest.fixture(scope="module")
def tool():
    t = chat_render_tool()
    if not t or not os.path.exists(t):
        pytest.skip("EDGELLM_TOOL_chat_render not set or not built (run through ctest)")
    return t


@pytest.fixture(scope="module")
def env():
    return hf_environment()


def test_templates_found():
    if not (SHARED / "templates").is_dir():
        pytest.skip(f"shared templates missing: {SHARED / 'templates'}")
    assert len(TEMPLATES) > 10


@pytest.mark.parametrize("template", TEMPLATES, ids=[p.stem for p in TEMPLATES])
@pytest.mark.parametrize("ctx_id,context", CONTEXTS, ids=[c[0] for c in CONTEXTS])
def test_render_matches_jinja2(tool, env, template, ctx_id, context):
    source = template.read_text(encoding="utf-8")
    expected, exc = render_python(env, source, context)
    got, err = render_ours(tool, template, context)
    if expected is None:
        reason = leniency_for(exc)
        if got is not None and reason:
            pytest.xfail(f"known leniency: {reason}")
        assert got is None, f"jinja2 raised {exc!r} but edgellm rendered:\n{got!r}"
        return
    assert got is not None, f"edgellm raised but jinja2 rendered: {err}"
    assert got == expected


def builtin_names():
    tool = chat_render_tool()
    if not tool or not os.path.exists(tool):
        return []
    out = subprocess.run([tool, "--list-builtins"], capture_output=True, check=True, text=True).stdout
    return out.split()


@pytest.mark.parametrize("name", builtin_names())
@pytest.mark.parametrize("ctx_id,context", CONTEXTS, ids=[c[0] for c in CONTEXTS])
def test_builtin_matches_jinja2(tool, env, tmp_path, name, ctx_id, context):
    """The built-in fallbacks are Jinja2 too: same oracle."""
    source = subprocess.run([tool, "--builtin-source", name], capture_output=True, check=True,
                            text=True).stdout
    path = tmp_path / f"{name}.jinja"
    path.write_text(source, encoding="utf-8")
    expected, exc = render_python(env, source, context)
    assert expected is not None, f"built-in {name} fails in jinja2: {exc!r}"
    got, err = render_ours(tool, path, context)
    assert got == expected, err
