"""The autoencoder detector and its TorchScript file: detection quality on a known manifold, agreement of
the scaling with scikit-learn, reproducibility, the saved file scoring on its own, and the loss curve in a
real run."""

from __future__ import annotations

import pickle
import sys
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the autoencoder needs PyTorch: pip install 'watchkeeper[torch]'")
pd = pytest.importorskip("pandas")

from sklearn.metrics import roc_auc_score  # noqa: E402
from sklearn.preprocessing import MinMaxScaler  # noqa: E402

import watchkeeper as wk  # noqa: E402
from watchkeeper.anomaly.autoencoder import Autoencoder  # noqa: E402
from watchkeeper.anomaly.saved import ScriptedDetector, load  # noqa: E402
from watchkeeper.errors import UsageError  # noqa: E402
from watchkeeper.store import Store  # noqa: E402

D, K = 8, 2  # features; dimension of the manifold the normal rows lie on
COLS = [f"kpi_{i}" for i in range(D)]


class Manifold:
    """Normal rows: a K-dimensional linear manifold in D dimensions plus small noise, offset and scaled per
    feature as KPIs are; anomalies: normal rows pushed off the manifold."""

    def __init__(self, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.basis = self.rng.normal(size=(K, D))
        self.offset = self.rng.uniform(-50, 500, size=D)
        self.unit = self.rng.uniform(0.5, 20, size=D)

    def normal(self, n: int) -> np.ndarray:
        z = self.rng.normal(size=(n, K)) @ self.basis + 0.05 * self.rng.normal(size=(n, D))
        return self.offset + self.unit * z

    def anomalous(self, n: int) -> np.ndarray:
        # normal rows with each feature shuffled across rows on its own: every feature keeps its normal
        # distribution, only the relation between features (the manifold) is broken
        X = self.normal(n)
        return np.column_stack([self.rng.permutation(X[:, j]) for j in range(D)])

    def labelled(self, n_normal: int, n_anomalous: int) -> tuple[pd.DataFrame, np.ndarray]:
        X = np.vstack([self.normal(n_normal), self.anomalous(n_anomalous)])
        return pd.DataFrame(X, columns=COLS), np.r_[np.zeros(n_normal), np.ones(n_anomalous)]


def quick(**kw) -> Autoencoder:
    return Autoencoder(**{"hidden": (16, 4), "epochs": 25, "batch_size": 64, "lr": 3e-3, **kw})


@pytest.fixture(scope="module")
def data() -> dict:
    m = Manifold(0)
    train = pd.DataFrame(m.normal(1500), columns=COLS)
    val, val_y = m.labelled(400, 40)
    test, test_y = m.labelled(400, 40)
    return {"train": train, "val": val, "val_y": val_y, "test": test, "test_y": test_y}


@pytest.fixture(scope="module")
def fitted(data) -> Autoencoder:
    det = quick().fit(data["train"])
    det.calibrate(data["val"], labels=data["val_y"])
    return det


def test_detects_rows_off_the_manifold(fitted, data):
    # random scores give an AUC near 0.5; so does anything that looks at one feature at a time, since each
    # feature of an anomaly has its normal distribution (z-score distance to the mean: 0.66 on these rows)
    auc = roc_auc_score(data["test_y"], fitted.score(data["test"]))
    assert auc > 0.95
    assert fitted.calibration.auc > 0.95
    flagged = fitted.predict(data["test"])
    assert flagged[data["test_y"] == 1].mean() > 0.6  # recall at the chosen threshold
    assert flagged[data["test_y"] == 0].mean() < 0.05  # false-positive rate


def test_score_is_mean_squared_reconstruction_error_in_scaled_space(fitted, data):
    X = data["test"].to_numpy()[:50]
    z = torch.from_numpy(fitted.scale(X)).float()
    with torch.no_grad():
        recon = fitted._net.decoder(fitted._net.encoder(z)).double().numpy()
    expected = ((recon - z.double().numpy()) ** 2).mean(axis=1)
    np.testing.assert_allclose(fitted.score(X), expected, rtol=1e-5)


def test_scaling_matches_sklearn_minmaxscaler():
    rng = np.random.default_rng(3)
    X = rng.normal(size=(300, 4)) * [1, 100, 1e-3, 1] + [0, 5e5, 2, 7]
    X[:, 3] = 7.0  # a constant column: range 1, maps to 0
    det = quick(hidden=(3, 2), epochs=1).fit(X)
    ref = MinMaxScaler().fit(X)
    np.testing.assert_array_equal(det.data_min, ref.data_min_)
    np.testing.assert_array_equal(det.data_range, np.where(ref.data_range_ == 0, 1.0, ref.data_range_))
    new = rng.normal(size=(100, 4)) * [3, 300, 3e-3, 1] + [0, 5e5, 2, 7]  # partly outside the fit range
    new[:5, 3] = [6.0, 7.0, 8.0, 9.5, 7.0]
    got = det.scale(new)
    np.testing.assert_allclose(got, ref.transform(new), rtol=1e-6, atol=1e-6)  # float32 network input
    assert got.min() < -0.5 and got.max() > 1.5  # not clipped to [0, 1]
    np.testing.assert_allclose(got[:5, 3], [-1.0, 0.0, 1.0, 2.5, 0.0], atol=1e-7)


def test_same_seed_same_scores_other_seed_other_scores(data):
    a = quick(epochs=4, seed=7, dropout=0.1).fit(data["train"]).score(data["test"])
    b = quick(epochs=4, seed=7, dropout=0.1).fit(data["train"]).score(data["test"])
    c = quick(epochs=4, seed=8, dropout=0.1).fit(data["train"]).score(data["test"])
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - c).max() > 1e-4


def test_fit_does_not_move_the_global_torch_generator(data):
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    quick(epochs=1, dropout=0.2).fit(data["train"])
    assert torch.equal(torch.rand(3), expected)


def test_saved_file_scores_with_plain_torch_jit_load(fitted, data, tmp_path):
    path = fitted.save(tmp_path / "kpi-ae.pt")
    assert path.read_bytes()[:2] == b"PK"
    with warnings.catch_warnings():
        warnings.simplefilter(
            "ignore", DeprecationWarning
        )  # torch.jit is deprecated in favour of torch.export
        module = torch.jit.load(str(path))
    X = data["test"].to_numpy()
    live = fitted.score(data["test"])
    np.testing.assert_allclose(module(torch.tensor(X)).numpy(), live, rtol=1e-6)
    np.testing.assert_allclose(module(torch.tensor(X, dtype=torch.float32)).numpy(), live, rtol=1e-3)
    with pytest.raises(Exception, match=r"expected a \(rows, 8\) tensor"):
        module(torch.zeros(3, 5))


def test_load_restores_threshold_columns_calibration(fitted, data, tmp_path):
    path = fitted.save(tmp_path / "kpi-ae.pt")
    det = load(path)
    assert isinstance(det, ScriptedDetector)
    assert det.name == "autoencoder"
    assert det.columns == COLS
    assert det.threshold == fitted.threshold
    assert det.calibration == fitted.calibration
    assert det.params()["hidden"] == [16, 4] and det.params()["seed"] == 0
    shuffled = data["test"][COLS[::-1]]  # columns are taken by name
    np.testing.assert_allclose(det.score(shuffled), fitted.score(data["test"]), rtol=1e-6)
    np.testing.assert_array_equal(det.predict(data["test"]), fitted.predict(data["test"]))
    cal = det.calibrate(data["val"], labels=data["val_y"])  # needs only score()
    assert cal.threshold == pytest.approx(fitted.threshold, rel=1e-6)
    with pytest.raises(UsageError, match="cannot be refitted"):
        det.fit(data["train"])


def test_missing_column_names_it(fitted, data, tmp_path):
    with pytest.raises(ValueError, match="kpi_3"):
        fitted.score(data["test"].drop(columns=["kpi_3"]))
    loaded = load(fitted.save(tmp_path / "m.pt"))
    with pytest.raises(ValueError, match="kpi_5"):
        loaded.score(data["test"].drop(columns=["kpi_5"]))


def test_rows_with_nan_score_nan(fitted, data):
    X = data["test"].to_numpy()[:10].copy()
    X[2, 1] = np.nan
    s = fitted.score(X)
    assert np.isnan(s[2]) and np.isfinite(np.delete(s, 2)).all()
    np.testing.assert_allclose(np.delete(s, 2), np.delete(fitted.score(data["test"])[:10], 2), rtol=1e-6)


def test_loss_curve_is_logged_to_a_run(data, sqlite_uri):
    run = wk.init(project="t", uri=sqlite_uri, system_metrics=False)
    det = quick(epochs=6, validation=0.2).fit(data["train"], run=run)
    det.calibrate(data["val"], labels=data["val_y"], run=run)
    run.finish()
    with Store(sqlite_uri) as store:
        train = store.signals.history(run.id, "anomaly/train_loss").value
        val = store.signals.history(run.id, "anomaly/val_loss").value
        epoch = store.signals.history(run.id, "epoch").value
        info = store.runs.get(run.id)
    np.testing.assert_allclose(train, [h["train_loss"] for h in det.history])
    np.testing.assert_allclose(val, [h["val_loss"] for h in det.history])
    assert epoch.tolist() == [1, 2, 3, 4, 5, 6]
    assert train[-1] < 0.5 * train[0]  # the network learns
    assert info.config["anomaly/autoencoder"]["hidden"] == [16, 4]
    assert info.summary["anomaly/autoencoder/auc"] == pytest.approx(det.calibration.auc)


def test_a_failing_run_does_not_stop_training(data):
    class Broken:
        def __init__(self) -> None:
            self.config: dict = {}
            self.summary: dict = {}

        def log(self, row):
            raise RuntimeError("store is down")

    det = quick(epochs=2).fit(data["train"], run=Broken())
    assert len(det.history) == 2


def test_early_stopping_stops_patience_epochs_after_the_best():
    X = Manifold(5).normal(300)
    det = Autoencoder(hidden=(8, 2), epochs=300, batch_size=32, lr=1e-2, validation=0.3, patience=3).fit(X)
    val = [h["val_loss"] for h in det.history]
    assert len(val) < 300
    assert len(val) - (int(np.argmin(val)) + 1) == 3


def test_partial_fit_adapts_to_new_normal_rows(fitted, data):
    moved = Manifold(0)  # the same manifold, moved off itself: new normal behaviour
    off = np.random.default_rng(9).normal(size=D)
    new = pd.DataFrame(moved.normal(600) + 0.5 * moved.unit * off, columns=COLS)
    det = pickle.loads(pickle.dumps(fitted))  # a copy, so the module fixture is untouched
    before = np.median(det.score(new))
    det.partial_fit(new, epochs=5)
    assert np.median(det.score(new)) < 0.5 * before
    assert len(det.history) == len(fitted.history) + 5


def test_pickle_round_trip_keeps_scores(fitted, data):
    copy = pickle.loads(pickle.dumps(fitted))
    np.testing.assert_array_equal(copy.score(data["test"]), fitted.score(data["test"]))
    assert copy.threshold == fitted.threshold and copy.columns == fitted.columns


def test_warns_when_the_bottleneck_is_not_narrower_than_the_input(data):
    with pytest.warns(UserWarning, match="bottleneck"):
        Autoencoder(hidden=(16, 8), epochs=1).fit(data["train"])


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"hidden": ()}, "hidden"),
        ({"hidden": (8, 0)}, "hidden"),
        ({"epochs": 0}, "epochs"),
        ({"lr": 0}, "lr"),
        ({"dropout": 1.0}, "dropout"),
        ({"validation": -0.1}, "validation"),
        ({"patience": 0}, "patience"),
        ({"threads": 0}, "threads"),
    ],
)
def test_bad_settings_name_the_field(kw, field):
    with pytest.raises(ValueError, match=field):
        Autoencoder(**kw)


def test_load_refuses_unknown_formats(tmp_path):
    path = tmp_path / "model.pkl"
    path.write_bytes(b"\x80\x04not a detector")
    with pytest.raises(ValueError, match=r"model\.pkl.*known: torchscript"):
        load(path)
    with pytest.raises(FileNotFoundError, match=r"nothing\.pt"):
        load(tmp_path / "nothing.pt")


def test_save_before_fit_is_an_error(tmp_path):
    with pytest.raises(ValueError, match="not fitted"):
        Autoencoder().save(tmp_path / "x.pt")


def test_missing_torch_says_how_to_install(monkeypatch, data):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(ImportError, match=r"pip install 'watchkeeper\[torch\]'"):
        quick().fit(data["train"])
