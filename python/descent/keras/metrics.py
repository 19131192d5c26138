"""Metrics are given to ``compile`` by name, as in Keras: ``"accuracy"``, ``"auc"``,
``"precision"``, ``"recall"``, ``"f1_score"``, ``"mae"``, ``"mse"``, … (descent's list).
These classes give the same names for code that writes ``keras.metrics.AUC()``."""


class Metric:
    _name = None

    def __init__(self, name=None, **_):
        self.name = self._name

    def __str__(self):
        return self._name


def _metric(cls_name, descent_name):
    globals()[cls_name] = type(cls_name, (Metric,), {"_name": descent_name})


for _cls, _name in [
    ("Accuracy", "accuracy"), ("SparseCategoricalAccuracy", "sparse_categorical_accuracy"),
    ("CategoricalAccuracy", "categorical_accuracy"), ("BinaryAccuracy", "binary_accuracy"), ("AUC", "auc"),
    ("Precision", "precision"), ("Recall", "recall"), ("F1Score", "f1"), ("MeanAbsoluteError", "mae"),
    ("MeanSquaredError", "mse"), ("RootMeanSquaredError", "rmse"), ("R2Score", "r2"),
]:
    _metric(_cls, _name)


def name_of(metric):
    if isinstance(metric, str):
        return metric
    if isinstance(metric, Metric):
        return metric._name
    raise ValueError(f"could not interpret metric: {metric!r}")
