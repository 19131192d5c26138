"""Keras's weight regularizers: penalty = l1·Σ|w| + l2·Σw²."""


class Regularizer:
    def __init__(self, l1=0.0, l2=0.0):
        self.l1, self.l2 = float(l1), float(l2)

    def get_config_table(self):
        return {"l1": self.l1, "l2": self.l2}


def l1(l1=0.01):
    return Regularizer(l1=l1)


def l2(l2=0.01):
    return Regularizer(l2=l2)


def l1_l2(l1=0.01, l2=0.01):
    return Regularizer(l1=l1, l2=l2)


L1L2 = Regularizer
