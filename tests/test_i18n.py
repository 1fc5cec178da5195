"""The interface's languages: the catalogs are complete and compiled, the visitor's language is found and kept,
and every text of a translated page goes through the catalog (a pseudo-locale marks what does)."""
import gettext
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from aelab import data, i18n
from aelab.config import setting_names
from conftest import app

ROOT = Path(__file__).resolve().parents[1]
POT = ROOT / "aelab/locales/aelab.pot"
PO = ROOT / "aelab/locales/zh_CN/LC_MESSAGES/aelab.po"
MO = PO.with_suffix(".mo")
PAGES = ["pages/home.py", "pages/train.py", "pages/reconstructions.py", "pages/latent.py", "pages/generate.py",
         "pages/pretrain.py", "pages/runs.py"]
# text that stays as it is in every language: names from data (runs, data sets, recipes), the product's name,
# the language picker (labelled in both), numbers, units and abbreviations
ALLOWED = re.compile(r"^(AE Lab|Language · 语言|[\d\s.,:%·×/()+\-–…]*|FID \d.*|[\d.]+ dB|"
                     r"MSE|PSNR|SSIM|BCE|PCA|t-SNE|UMAP|KL|[xyzβσρ])$")
PLACEHOLDER = re.compile(r"\{[^{}]*\}")

pytestmark = pytest.mark.usefixtures("app_router")   # see conftest


def test_the_catalog_holds_every_message_of_the_code(tmp_path):
    """`make translations` was run after the last change of a message: the template has exactly the messages
    the code marks, the Chinese catalog translates each of them (same placeholders), and the compiled catalog
    is the current one."""
    fresh = tmp_path / "fresh.pot"
    keywords = re.search(r"^KEYWORDS := (.*)$", (ROOT / "Makefile").read_text(), re.M).group(1).split()
    subprocess.run([sys.executable, "-m", "babel.messages.frontend", "extract", "-F", "babel.cfg", *keywords,
                    "--no-location", "--sort-output", "-o", str(fresh), "streamlit_app.py", "pages", "aelab"],
                   cwd=ROOT, check=True, capture_output=True)
    ids = {m.id for m in read_po(fresh.open("rb")) if m.id}
    assert ids == {m.id for m in read_po(POT.open("rb")) if m.id}, "run `make translations`"
    zh = {m.id: m for m in read_po(PO.open("rb"), locale="zh_CN") if m.id}
    assert ids == set(zh), "run `make translations`"
    untranslated = [i for i, m in zh.items() if not m.string or m.fuzzy]
    assert not untranslated, f"{len(untranslated)} messages have no Chinese translation: {untranslated[:5]}"
    for message_id, message in zh.items():
        assert sorted(PLACEHOLDER.findall(message.string)) == sorted(PLACEHOLDER.findall(message_id)), message_id
    compiled = gettext.GNUTranslations(MO.open("rb"))
    stale = [i for i, m in zh.items() if compiled.gettext(i) != m.string]
    assert not stale, f"the compiled catalog is stale (run `make translations`): {stale[:3]}"


def test_the_glossary_terms_are_used_as_the_note_uses_them():
    zh = {m.id: m.string for m in read_po(PO.open("rb"), locale="zh_CN") if m.id}
    glossary = (ROOT / "aelab/locales/GLOSSARY.md").read_text()
    for english, chinese in re.findall(r"^\| ([^|]+?) \| ([^|]+?) \|", glossary, re.M)[1:]:   # past the header
        for message_id, text in zh.items():
            # an abbreviation in capitals (GAN) is matched as written: "gan" is a recipe's name
            words = PLACEHOLDER.sub("", message_id)   # "{run}" is a value, not the word
            if re.search(rf"\b{re.escape(english)}\b", words, 0 if english.isupper() else re.I):
                assert chinese in text, f"{english!r} should read {chinese!r} in {text!r}"


@pytest.mark.parametrize("header, expected", [
    ("zh-CN,zh;q=0.9,en;q=0.8", "zh"), ("en-US,en;q=0.9,zh-CN;q=0.8", "en"), ("fr-FR,zh-TW;q=0.5", "zh"),
    ("de-DE", "en"), ("", "en"), (None, "en"), ("zh;q=0, en", "en"), ("zh;q=abc,en", "en"), ("zh_CN", "zh"),
    ("en;q=0.2,zh;q=0.7", "zh")])
def test_the_browser_preferred_language(header, expected):
    assert i18n.preferred_language(header) == expected


def test_class_names_of_built_in_data_sets_are_translated_not_stored():
    assert i18n.CLASS_NAMES["fashion-mnist"] == data.FASHION_CLASSES
    zh = i18n.class_names("fashion-mnist", data.FASHION_CLASSES, "zh")
    assert zh == ["T恤/上衣", "裤子", "套头衫", "连衣裙", "外套", "凉鞋", "衬衫", "运动鞋", "包", "短靴"]
    assert i18n.class_names("fashion-mnist", data.FASHION_CLASSES, "en") == list(data.FASHION_CLASSES)
    assert i18n.class_names("my-upload", ["Coat", "Bag"], "zh") == ["Coat", "Bag"]   # an upload's own names


def proto_texts(proto):
    """The visible strings of an element's protobuf: bodies, labels, help texts, captions, placeholders, and
    the texts of a chart."""
    for field, value in proto.ListFields():
        if field.name in ("body", "label", "help", "placeholder", "caption", "text") and isinstance(value, str):
            yield value
        elif field.name == "spec" and isinstance(value, str) and value.startswith("{"):   # a Plotly figure
            yield from chart_texts(json.loads(value))
        elif hasattr(value, "ListFields"):   # a nested message (not a repeated field)
            yield from proto_texts(value)


def chart_texts(spec: dict):
    """A Plotly figure's words: its title, axis and colour-bar titles, annotations, and the names in its legend."""
    layout = spec.get("layout", {})

    def title(item) -> str:
        return (item or {}).get("title", {}).get("text", "") if isinstance((item or {}).get("title"), dict) \
            else (item or {}).get("title") or ""
    yield title(layout)
    for key, item in layout.items():
        if key.startswith(("xaxis", "yaxis")) or key == "coloraxis":
            yield title(item)
    yield from (a.get("text", "") for a in layout.get("annotations", []))
    for trace in spec.get("data", []):
        if trace.get("showlegend") is not False and trace.get("type") != "parcoords":
            yield str(trace.get("name") or "")
        yield from (title(d) for d in [trace.get("marker", {}).get("colorbar", {})] if d)


def texts(node):
    """Every visible text under an AppTest node (an element, or a block and its children)."""
    proto = getattr(node, "proto", None)
    if hasattr(proto, "ListFields"):
        yield from proto_texts(proto)
    for child in getattr(node, "children", {}).values():
        yield from texts(child)


def unmarked(at) -> list[str]:
    found = []
    for text in [*texts(at.main), *texts(at.sidebar)]:
        plain = text
        while re.search(r"⟦[^⟦⟧]*⟧", plain):   # messages inside messages: the innermost first
            plain = re.sub(r"⟦[^⟦⟧]*⟧", "", plain)
        plain = re.sub(r"[*_`#:]|material/[a-z_]+", "", plain).strip()
        if plain and not ALLOWED.match(plain) and not any(n in plain for n in NAMES) and text not in SETTINGS:
            found.append(text)
    return found


SETTINGS = {name for _, name, *_ in setting_names()}   # a setting's name, as in a CLI flag or a share link
NAMES = ("fashion-mnist", "digits", "-fashion", "stacked", "denoising", "sparse", "tied", "linear", "conv", "vae",
         "gan", "dcgan", "recurrent", "hashing", "classifier")   # run, recipe and data set names (the examples)


# every page, and the views that show more: each family's form, a VAE's and a hashing run's tools
VIEWS = [*((page, {}, {}) for page in PAGES),
         *(("pages/train.py", {"preset": recipe}, {}) for recipe in ("vae", "dcgan", "classifier")),
         ("pages/latent.py", {}, {"active_run": "example:vae-fashion"}),
         ("pages/latent.py", {}, {"active_run": "example:hashing-fashion"}),
         ("pages/generate.py", {}, {"active_run": "example:vae-fashion"}),
         ("pages/generate.py", {}, {"active_run": "example:gan-fashion"})]


@pytest.mark.parametrize("page, query, state", VIEWS)
def test_every_text_of_a_page_goes_through_the_catalog(page, query, state):
    from aelab.jobs import registry

    at = app(page, query, lang=i18n.PSEUDO, **state)
    for _ in range(3):   # projections, probes, scores: draw them, and what they start in turn
        assert all(task.join(180) for task in registry().tasks())
        at.run()
    assert not at.error, [e.value for e in at.error]
    leftovers = unmarked(at)
    assert not leftovers, f"{len(leftovers)} texts are not in the catalog: {leftovers[:8]}"


@pytest.mark.parametrize("page", PAGES)
def test_every_page_in_chinese(page):
    at = app(page, {"lang": "zh"})
    assert at.session_state["lang"] == "zh" and at.query_params["lang"] == "zh"
    assert at.sidebar.selectbox[0].label == "数据集"
    assert not at.exception


def test_the_language_follows_the_picker_and_the_address():
    at = app("pages/home.py")
    assert at.session_state["lang"] == "en" and "Recent runs" in [s.value for s in at.subheader]
    at.sidebar.button_group[0].set_value("zh").run()   # the picker
    assert at.query_params["lang"] == "zh" and "最近的运行" in [s.value for s in at.subheader]
    assert not at.exception


def test_a_limit_is_said_in_the_visitors_language_from_its_code_and_numbers(monkeypatch):
    from aelab import limits
    from aelab.errors import UploadLimitError

    monkeypatch.setenv("AELAB_MAX_UPLOAD_IMAGES", "1000")
    with pytest.raises(UploadLimitError) as refused:
        limits.check("upload_images", 2500, UploadLimitError)
    assert str(refused.value) == i18n.error_message(refused.value, "en") == (
        "the number of images is 2,500 images; the limit is 1,000 images (AELAB_MAX_UPLOAD_IMAGES)")
    assert i18n.error_message(refused.value, "zh") == (
        "图像数量为 2,500 张图像；上限是 1,000 张图像（AELAB_MAX_UPLOAD_IMAGES）")
    assert i18n.error_message(ValueError("a plain error"), "zh") == "a plain error"   # no code: as it is


def test_an_error_of_aelab_is_said_in_the_visitors_language_from_its_template(tmp_path):
    import aelab
    from aelab import uploads
    from aelab.errors import ConfigError, RunError, UploadError
    from aelab.jobs import JobRefused
    from aelab.runs import RunStore

    with pytest.raises(RunError) as missing:
        RunStore(tmp_path).open("nope")
    assert str(missing.value) == i18n.error_message(missing.value, "en") == f"no run named 'nope' in {tmp_path}"
    assert i18n.error_message(missing.value, "zh") == f"{tmp_path} 中没有名为 'nope' 的运行"
    with pytest.raises(UploadError) as refused:
        uploads.read_images(b"GIF89a", "cat.gif")
    assert i18n.error_message(refused.value, "zh").startswith("不支持的文件类型 '.gif'：")
    too_many = JobRefused("this server has {n} computations waiting; try again in a minute", n=3)
    assert i18n.error_message(too_many, "zh") == "本服务器有 3 个计算在等待；请一分钟后再试"
    with pytest.raises(ConfigError) as unknown:
        aelab.preset("nope", "digits")
    assert i18n.error_message(unknown.value, "zh").startswith("未知的配方 'nope'；请从 stacked, ")
    assert i18n.error_message(RunError("an {unknown} message"), "zh") == "an {unknown} message"   # as it is


def test_a_workers_message_crosses_processes_and_is_said_in_the_visitors_language():
    import pickle

    from aelab.worker import _out_of_memory

    message = pickle.loads(pickle.dumps(_out_of_memory({"memory_mb": 2000}, i18n.said("the task"),
                                                        i18n.said("try fewer images"))))
    assert message == ("the task ran out of memory (this server gives a job or task 2,000 MB, AELAB_MAX_WORKER_MB); "
                       "try fewer images")
    assert i18n.error_message(message, "zh") == "后台计算内存不足（本服务器给每个任务或计算 2,000 MB，" \
                                                "AELAB_MAX_WORKER_MB）；请减少图像数量"
    assert i18n.error_message("plain English", "zh") == "plain English"


def test_a_diverged_run_is_said_in_the_visitors_language(tmp_path):
    import aelab

    cfg = aelab.preset("stacked", "digits")
    cfg.train.epochs, cfg.train.lr = 2, 1e6   # past any learning rate that converges
    with pytest.raises(aelab.TrainingDiverged) as diverged:
        aelab.train(cfg, runs_dir=tmp_path, name="exploded")
    assert "The epochs before were saved as run exploded" in str(diverged.value)
    zh = i18n.error_message(diverged.value, "zh")
    assert zh.startswith("训练损失在第 1 轮") and "之前的轮次已保存为运行 exploded" in zh, zh
