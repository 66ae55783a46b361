"""SPD and SGR losses: values, stop-gradient on the teacher, VGG weights handling."""
import pytest
import torch
from torchvision.models.vgg import cfgs, make_layers

from mmseg_rass.models.losses import SGRLoss, SPDLoss


def test_spd_value_and_stop_gradient():
    s = torch.tensor([[0.0, 3.0]], requires_grad=True)
    t = torch.tensor([[0.5, 0.0]], requires_grad=True)
    loss = SPDLoss(loss_weight=2.0)(s, t)
    # smooth-L1 (beta 1): 0.5 * 0.5^2 = 0.125 and 3 - 0.5 = 2.5 -> mean 1.3125
    assert loss.item() == pytest.approx(2.0 * 1.3125)
    loss.backward()
    assert t.grad is None and s.grad is not None
    with pytest.raises(ValueError, match='differ in shape'):
        SPDLoss()(s, t[:, :1])


def test_paper_defaults():
    """λ1 = 0.005 and λ2 = 200 (the SPD paper's Table 6 choice), L2 relation (Eq. 6)."""
    assert SPDLoss().loss_weight == 0.005
    sgr = SGRLoss(random_init_vgg=True, layer_ids=(1, ))
    assert sgr.loss_weight == 200. and sgr.relation_type == 'l2'
    with pytest.raises(ValueError, match="relation must be 'l2' or 'cosine'"):
        SGRLoss(random_init_vgg=True, relation='dot')


def test_sgr_l2_relation_by_hand():
    feats = torch.zeros(1, 2, 2, 2)
    feats[0, 0, 0] = 2.  # top row: (2, 0)
    feats[0, 1, 1] = 4.  # bottom row: (0, 4)
    masks = torch.zeros(1, 3, 2, 2)
    masks[0, 0, 0] = 1
    masks[0, 1, 1] = 1
    masks[0, 2] = 1  # whole image: (1, 2)
    rel, valid = SGRLoss.relation(feats, masks)
    # R_ij = mean over the 2 channels of (d_i - d_j)^2
    expected = torch.tensor([[0., (4 + 16) / 2, (1 + 4) / 2],
                             [(4 + 16) / 2, 0., (1 + 4) / 2],
                             [(1 + 4) / 2, (1 + 4) / 2, 0.]])
    assert torch.allclose(rel[0], expected) and valid.all()


def test_sgr_cosine_relation_by_hand():
    feats = torch.zeros(1, 2, 2, 2)
    feats[0, 0, 0] = 1.  # top row: (1, 0)
    feats[0, 1, 1] = 1.  # bottom row: (0, 1)
    masks = torch.zeros(1, 3, 2, 2)
    masks[0, 0, 0] = 1
    masks[0, 1, 1] = 1
    masks[0, 2] = 1  # whole image: (0.5, 0.5)
    rel, valid = SGRLoss.relation(feats, masks, 'cosine')
    c = 0.5 / (0.5 ** 0.5)
    assert torch.allclose(rel[0], torch.tensor([[1., 0., c], [0., 1., c], [c, c, 1.]]), atol=1e-6)
    assert valid.all()


@pytest.mark.parametrize('relation', ['l2', 'cosine'])
def test_sgr_zero_for_equal_outputs_and_gradient_to_student_only(relation):
    torch.manual_seed(0)
    sgr = SGRLoss(loss_weight=10., random_init_vgg=True, layer_ids=(3, 8), relation=relation)
    assert sgr.vgg[0].weight.requires_grad is False
    t = torch.randn(2, 5, 16, 24, requires_grad=True)
    s = torch.randn(2, 5, 16, 24, requires_grad=True)
    masks = torch.zeros(2, 4, 32, 48)
    masks[:, 0, :16] = 1
    masks[:, 1, 16:, :24] = 1
    masks[:, 2, 16:, 24:] = 1  # slot 3 empty: ignored
    assert sgr(t, t, masks).item() == pytest.approx(0., abs=1e-7)
    loss = sgr(s, t, masks)
    assert loss.item() > 0
    loss.backward()
    assert t.grad is None and s.grad.abs().sum() > 0
    assert all(p.grad is None for p in sgr.vgg.parameters())
    sgr.train()
    assert not sgr.vgg.training


def test_sgr_vgg_weights(tmp_path):
    with pytest.raises(ValueError, match='needs VGG16 weights'):
        SGRLoss()
    with pytest.raises(ValueError, match='needs VGG16 weights'):
        SGRLoss(vgg_weights='x.pth', random_init_vgg=True)
    with pytest.raises(FileNotFoundError, match='vgg16-397923af.pth'):
        SGRLoss(vgg_weights=str(tmp_path / 'none.pth'))
    torch.manual_seed(1)
    features = make_layers(cfgs['D'])
    path = tmp_path / 'vgg16.pth'
    torch.save({f'features.{k}': v for k, v in features.state_dict().items()}, path)
    sgr = SGRLoss(vgg_weights=str(path), layer_ids=(3, ))
    assert torch.equal(sgr.vgg[2].weight, features[2].weight)
    with pytest.raises(ValueError, match="input_type must be"):
        SGRLoss(random_init_vgg=True, input_type='rgb')
    img = torch.rand(1, 3, 8, 8)
    m = torch.ones(1, 1, 8, 8)
    assert SGRLoss(random_init_vgg=True, input_type='image', layer_ids=(1, ))(img, img, m) == 0
