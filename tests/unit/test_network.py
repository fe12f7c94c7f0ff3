"""The network is written twice, in TensorFlow for training and in numpy for imputing: they must agree."""

from __future__ import annotations

import numpy as np

from deepimpute_tool.network import FusedNetworks, Layout, NetworkState, StepSettings, configure_tensorflow
from tests.helpers import dense


def test_tensorflow_and_numpy_forward_passes_agree_on_a_trained_model(pbmc68k, pbmc68k_model):
    model = pbmc68k_model
    column = {gene: i for i, gene in enumerate(model.genes)}
    inputs = [np.array([column[g] for g in net.predictors]) for net in model.subnetworks]
    outputs = [np.array([column[g] for g in net.targets]) for net in model.subnetworks]
    hidden = model.subnetworks[0].W1.shape[1]
    assert model.has_detection
    layout = Layout.of(inputs, outputs, n_columns=model.genes.size, hidden=hidden, detection=True)
    padded = [np.zeros_like(a) for a in layout.initial_weights(np.random.default_rng(0))]
    for s, net in enumerate(model.subnetworks):
        padded[0][s, : net.predictors.size] = net.W1
        padded[1][s, 0] = net.b1
        for i, (W, b) in enumerate(((net.W2, net.b2), (net.W3, net.b3))):
            padded[2 + 2 * i][s, :, : net.targets.size] = W
            padded[3 + 2 * i][s, 0, : net.targets.size] = b
    tf, _ = configure_tensorflow(cores=2, device="cpu", seed=0)
    networks = FusedNetworks(
        tf,
        layout=layout,
        nets=np.arange(layout.n_nets),
        state=NetworkState(weights=tuple(padded), best=tuple(a.copy() for a in padded)),
        settings=StepSettings(dropout=0.2, batch_size=64, precision="float32"),
        step=tf.Variable(0.0),
        rate=tf.Variable(1e-3),
        generator=tf.random.Generator.from_seed(0),
    )
    genes = {gene: i for i, gene in enumerate(pbmc68k.genes)}
    x = np.log1p(dense(pbmc68k.counts)[:150][:, [genes[g] for g in model.genes]]).astype(np.float32)
    values, logits = (a.numpy() for a in networks.predict_log(tf.constant(x)))  # nets x targets x cells
    np.testing.assert_array_equal(values, networks.predict_log(tf.constant(x))[0].numpy())  # no dropout
    for s, net in enumerate(model.subnetworks):
        through_numpy, probability = net.predict(x[:, inputs[s]], detection=True)
        assert through_numpy.std() > 0.1 and probability.std() > 0.05  # a real model, not a constant
        np.testing.assert_allclose(values[s, : net.targets.size].T, through_numpy, rtol=1e-5, atol=2e-6)
        np.testing.assert_allclose(
            1 / (1 + np.exp(-logits[s, : net.targets.size].T)), probability, rtol=1e-5, atol=2e-6
        )
