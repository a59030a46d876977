"""One check shared by the model tests: reading in calls with the state carried equals one call."""
import torch

SPLITS = [(0, 7), (7, 40), (40, 41), (41, 67)]  # cuts inside chunks, CMS blocks and the attention window


def assert_calls_equal_one_call(model, tokens: torch.Tensor, atol: float, splits=SPLITS):
    """Logits and every state tensor of ``tokens`` read in ``splits`` equal one call's (within ``atol``)."""
    with torch.no_grad():
        full = model(tokens)
        state, pieces = None, []
        for a, b in splits:
            out = model(tokens[:, a:b], state=state)
            state, pieces = out.state, pieces + [out.logits]
    assert torch.allclose(torch.cat(pieces, 1), full.logits, atol=atol, rtol=0)
    for name, t in full.state.tensors().items():
        assert torch.allclose(state.tensors()[name], t, atol=atol, rtol=0), name
    assert state.position == full.state.position == splits[-1][1]
