"""Artifacts and images: content-addressed, versioned per name, readable back byte for byte."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

import watchkeeper as wk
from watchkeeper.store import Store


def _decode_png(data: bytes) -> np.ndarray:
    """A minimal reader for the PNGs our encoder writes (8-bit, filter 0), to check the pixels."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, header = 8, b"", None
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        body = data[pos + 8 : pos + 8 + length]
        crc = struct.unpack(">I", data[pos + 8 + length : pos + 12 + length])[0]
        assert crc == zlib.crc32(kind + body) & 0xFFFFFFFF
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    w, h, _depth, color, *_ = header
    channels = {0: 1, 4: 2, 2: 3, 6: 4}[color]
    raw = np.frombuffer(zlib.decompress(idat), dtype=np.uint8).reshape(h, 1 + w * channels)
    assert (raw[:, 0] == 0).all()
    return raw[:, 1:].reshape(h, w, channels)


def test_log_artifact_versions_by_content(store_uri, tmp_path):
    model = tmp_path / "model.bin"
    model.write_bytes(b"weights-1")
    run = wk.init(project="p", uri=store_uri, artifact_root=tmp_path / "blobs")
    v1 = run.log_artifact(model, name="clf", type="model", metadata={"auc": 0.9})
    same = run.log_artifact(model, name="clf", type="model")
    model.write_bytes(b"weights-2")
    v2 = run.log_artifact(model, name="clf", type="model")
    assert (v1.version, same.version, v2.version) == (1, 1, 2)
    assert v1.metadata == {"auc": 0.9} and v1.size == 9 and v1.type == "model"
    model.unlink()  # the store has its own copy
    run.finish()
    store = Store(store_uri, artifact_root=tmp_path / "blobs")
    assert [a.ref for a in store.artifacts.list(run_id=run.id)] == ["clf:v1", "clf:v2"]
    out = store.artifacts.download("p", "clf:v1", tmp_path / "out1")
    assert (out / "model.bin").read_bytes() == b"weights-1"
    assert store.artifacts.get("p", "clf").version == 2
    with pytest.raises(KeyError, match="no artifact 'clf:v9'"):
        store.artifacts.get("p", "clf:v9")


def test_a_directory_artifact_keeps_its_tree(store_uri, tmp_path):
    src = tmp_path / "bundle"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("A")
    (src / "sub" / "b.txt").write_text("BB")
    run = wk.init(project="p", uri=store_uri, artifact_root=tmp_path / "blobs")
    av = run.log_artifact(src, type="dataset")
    assert (av.name, av.file_count, av.size) == ("bundle", 2, 3)
    second = wk.init(project="p", uri=store_uri, artifact_root=tmp_path / "blobs")
    path = second.use_artifact("bundle:v1", root=tmp_path / "used")
    assert (path / "sub" / "b.txt").read_text() == "BB"
    store = Store(store_uri, artifact_root=tmp_path / "blobs")
    assert [a.ref for a in store.artifacts.list(run_id=second.id)] == ["bundle:v1"]  # recorded as input


def test_log_artifact_refuses_a_missing_path(store_uri, tmp_path):
    run = wk.init(project="p", uri=store_uri)
    with pytest.raises(FileNotFoundError, match="no file or directory at"):
        run.log_artifact(tmp_path / "missing.bin")


def test_images_in_tables_are_stored_as_pngs_with_their_pixels(store_uri, tmp_path):
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, size=(5, 7, 3), dtype=np.uint8)
    grey = rng.random((4, 3))  # floats in [0, 1] scale to 0..255
    run = wk.init(project="p", uri=store_uri, artifact_root=tmp_path / "blobs")
    run.log(
        {"imgs": wk.Table(columns=["name", "img"], data=[["rgb", wk.Image(rgb)], ["grey", wk.Image(grey)]])}
    )
    run.log({"single": wk.Image(rgb, caption="one")})
    run.finish()
    store = Store(store_uri, artifact_root=tmp_path / "blobs")
    t = store.samples.table(run.id, "imgs")
    cell = t.rows[0][1]["$image"]
    assert (cell["width"], cell["height"], cell["format"]) == (7, 5, "png")
    np.testing.assert_array_equal(_decode_png(store.blobs.read(cell["digest"])), rgb)
    g = _decode_png(store.blobs.read(t.rows[1][1]["$image"]["digest"]))[:, :, 0]
    np.testing.assert_array_equal(g, np.rint(grey * 255).astype(np.uint8))
    single = store.samples.table(run.id, "single").rows[0][0]["$image"]
    assert single["caption"] == "one" and single["digest"] == cell["digest"]  # same pixels, same blob


def test_image_refuses_what_it_cannot_show(tmp_path):
    with pytest.raises(ValueError, match=r"HxW or HxWxC array.*got shape \(2, 2, 2, 2\)"):
        wk.Image(np.zeros((2, 2, 2, 2)))
    with pytest.raises(TypeError, match="expected a path"):
        wk.Image(42)
    with pytest.raises(FileNotFoundError):
        wk.Image(tmp_path / "nope.png")


def test_table_rows_are_checked(store_uri):
    with pytest.raises(ValueError, match=r"row 1 has 1 values, expected 2"):
        wk.Table(columns=["a", "b"], data=[[1, 2], [3]])
    run = wk.init(project="p", uri=store_uri)
    with pytest.raises(
        TypeError, match=r"t: row 0, column 'b': cannot store a value of type builtins\.object"
    ):
        run.log({"t": wk.Table(columns=["a", "b"], data=[[1, object()]])})


def test_table_from_a_dataframe(store_uri):
    pd = pytest.importorskip("pandas")
    df = pd.DataFrame({"q": ["a", "b"], "score": [0.5, float("nan")]})
    run = wk.init(project="p", uri=store_uri)
    run.log({"df": wk.Table(dataframe=df)})
    run.finish()
    t = Store(store_uri).samples.table(run.id, "df")
    assert t.columns == ["q", "score"] and t.rows[0] == ["a", 0.5] and t.rows[1][1] != t.rows[1][1]
