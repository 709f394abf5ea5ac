"""The diffusion algebra: forward noising, each sampler, guidance, parametrisations, the masked loss."""

import math

import pytest
import torch

from dexter_cli.diffusion import Schedule, diffusion_loss, sample_ddim, sample_ddpm, sample_dpmpp_2m, training_target
from dexter_cli.diffusion.samplers import Guided
from dexter_cli.errors import DexterError

MU, S = 0.7, 0.5  # data distribution N(MU, S^2): its exact denoiser is known in closed form


def gaussian_denoiser(schedule: Schedule, prediction: str = "eps", mu=MU, s=S):
    def f(x, t, cond):
        ab = schedule.ab(t).to(x.dtype).reshape(-1, *[1] * (x.dim() - 1))
        x0 = mu + ab.sqrt() * s ** 2 / (ab * s ** 2 + 1 - ab) * (x - ab.sqrt() * mu)  # E[x0 | x_t]
        eps = (x - ab.sqrt() * x0) / (1 - ab).sqrt()
        return {"eps": eps, "x0": x0, "v": ab.sqrt() * eps - (1 - ab).sqrt() * x0}[prediction]
    return f


def ode_solution(schedule, x_T):
    ab = schedule.alphas_cumprod[-1].item()
    z = (x_T - math.sqrt(ab) * MU) / math.sqrt(ab * S ** 2 + 1 - ab)
    return MU + S * z


@pytest.fixture(scope="module")
def sched():
    return Schedule.linear(1000, 1e-4, 0.02)


def test_linear_schedule_and_forward_noising(sched):
    assert sched.betas[0].item() == pytest.approx(1e-4) and sched.betas[-1].item() == pytest.approx(0.02)
    g = torch.Generator().manual_seed(0)
    x0 = torch.full((200000,), 2.0, dtype=torch.float64)
    t = torch.full((200000,), 300)
    xt = sched.q_sample(x0, t, torch.randn(x0.shape, generator=g, dtype=torch.float64))
    ab = sched.alphas_cumprod[300].item()
    assert xt.mean().item() == pytest.approx(2 * math.sqrt(ab), abs=0.01)
    assert xt.var().item() == pytest.approx(1 - ab, rel=0.02)


def test_dpmpp_2m_reproduces_the_probability_flow_of_a_gaussian(sched):
    g = torch.Generator().manual_seed(0)
    x_T = torch.randn(2, 16, 5, generator=g, dtype=torch.float64)
    ref = ode_solution(sched, x_T)
    err = {n: (sample_dpmpp_2m(Guided(gaussian_denoiser(sched), {}), x_T.clone(), sched, steps=n) - ref).abs().max().item()
           for n in (20, 40, 80)}
    assert err[20] < 0.03
    assert err[40] < err[20] / 3 and err[80] < err[40] / 3  # second-order convergence
    # and it beats first-order DDIM at the same step count by far
    ddim = (sample_ddim(Guided(gaussian_denoiser(sched), {}), x_T.clone(), sched, steps=10) - ref).abs().max().item()
    dpm = (sample_dpmpp_2m(Guided(gaussian_denoiser(sched), {}), x_T.clone(), sched, steps=10) - ref).abs().max().item()
    assert dpm < ddim / 4


def test_ddim_eta0_follows_the_ode(sched):
    x_T = torch.randn(4, 8, 5, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ref = ode_solution(sched, x_T)
    e100 = (sample_ddim(Guided(gaussian_denoiser(sched), {}), x_T.clone(), sched, steps=100) - ref).abs().max().item()
    e400 = (sample_ddim(Guided(gaussian_denoiser(sched), {}), x_T.clone(), sched, steps=400) - ref).abs().max().item()
    assert e100 < 0.06 and e400 < e100 / 3  # first-order convergence to the ODE solution


def test_ddim_eta1_with_every_step_is_ddpm(sched):
    x_T = torch.randn(3, 8, 5, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    a = sample_ddpm(Guided(gaussian_denoiser(sched), {}), x_T.clone(), sched, generator=torch.Generator().manual_seed(5))
    b = sample_ddim(Guided(gaussian_denoiser(sched), {}), x_T.clone(), sched, steps=1000, eta=1.0,
                    generator=torch.Generator().manual_seed(5))
    assert torch.allclose(a, b, atol=1e-6)


def test_ddpm_samples_have_the_data_statistics(sched):
    x_T = torch.randn(20000, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    out = sample_ddpm(Guided(gaussian_denoiser(sched), {}), x_T, sched, generator=torch.Generator().manual_seed(4))
    assert out.mean().item() == pytest.approx(MU, abs=0.02)
    assert out.std().item() == pytest.approx(S, rel=0.03)


@pytest.mark.parametrize("prediction", ["x0", "v"])
def test_parametrisations_agree(sched, prediction):
    x_T = torch.randn(2, 8, 5, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    ref = sample_dpmpp_2m(Guided(gaussian_denoiser(sched, "eps"), {}), x_T.clone(), sched, steps=15)
    out = sample_dpmpp_2m(Guided(gaussian_denoiser(sched, prediction), {}, prediction=prediction), x_T.clone(), sched,
                          steps=15)
    assert torch.allclose(out, ref, atol=1e-6)


def test_start_from_a_given_xt_recovers_point_mass_data(sched):
    a = torch.randn(2, 8, 5, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    den = lambda x, t, c: (x - sched.ab(t).reshape(-1, 1, 1).sqrt() * a) / (1 - sched.ab(t).reshape(-1, 1, 1)).sqrt()
    xt = sched.q_sample(a, torch.full((2,), 400), torch.randn(a.shape, dtype=torch.float64))
    for sampler in (sample_ddim, sample_dpmpp_2m):
        assert torch.allclose(sampler(Guided(den, {}), xt.clone(), sched, steps=10, t_start=400), a, atol=1e-8)


def test_classifier_free_guidance_combines_one_batched_pass(sched):
    calls = []

    def den(x, t, cond):
        calls.append(x.shape[0])
        return gaussian_denoiser(sched, mu=0.0)(x, t, cond) + cond["shift"]

    x_T = torch.randn(2, 4, 5, generator=torch.Generator().manual_seed(8), dtype=torch.float64)
    cond, uncond = {"shift": torch.full((2, 1, 1), 0.1)}, {"shift": torch.zeros(2, 1, 1)}
    w0 = sample_ddim(Guided(den, cond, uncond, 0.0), x_T.clone(), sched, steps=5)
    assert calls == [4] * 5  # conditional and unconditional passes in one batch
    plain_u = sample_ddim(Guided(den, uncond), x_T.clone(), sched, steps=5)
    assert torch.allclose(w0, plain_u, atol=1e-10)
    w1 = sample_ddim(Guided(den, cond, uncond, 1.0), x_T.clone(), sched, steps=5)
    assert torch.allclose(w1, sample_ddim(Guided(den, cond), x_T.clone(), sched, steps=5))
    w3 = sample_ddim(Guided(den, cond, uncond, 3.0), x_T.clone(), sched, steps=5)
    assert not torch.allclose(w3, w1)


def test_masked_loss_ignores_padding(sched):
    g = torch.Generator().manual_seed(9)
    x0, noise, out = (torch.randn(2, 10, 5, generator=g) for _ in range(3))
    mask = torch.ones(2, 10)
    mask[:, 7:] = 0
    ab = sched.ab(torch.tensor([10, 900])).float()
    xt = sched.q_sample(x0, torch.tensor([10, 900]), noise)
    a = diffusion_loss(out, x0, xt, noise, ab, mask)
    out2, x02 = out.clone(), x0.clone()
    out2[:, 7:] += 100
    x02[:, 7:] -= 50
    b = diffusion_loss(out2, x02, xt, noise, ab, mask)
    for k in a:
        assert torch.allclose(a[k], b[k]), k
    assert diffusion_loss(training_target("eps", x0, noise, ab), x0, xt, noise, ab, mask)["loss"].item() < 1e-5


def test_unknown_choices_list_the_valid_ones():
    with pytest.raises(DexterError, match="eps, x0, v"):
        training_target("score", torch.zeros(1), torch.zeros(1), torch.ones(1))
    from dexter_cli.diffusion import get_sampler
    with pytest.raises(DexterError, match="dpm\\+\\+, ddim, ddpm"):
        get_sampler("euler")


def test_clip_x0_bounds_the_predicted_data_and_keeps_eps_consistent(sched):
    from dexter_cli.diffusion.samplers import predict

    x = torch.randn(2, 8, 5, dtype=torch.float64)
    ab = sched.ab(torch.tensor([999, 999]))
    out = torch.full_like(x, 0.3)  # an eps error at t = T: x0_hat = (x - s * eps) / a explodes
    eps, x0 = predict("eps", out, x, ab, None)
    assert x0.abs().max() > 20
    eps_c, x0_c = predict("eps", out, x, ab, 5.0)
    assert x0_c.abs().max() <= 5.0
    a = ab.reshape(-1, 1, 1).to(x.dtype)
    assert torch.allclose(a.sqrt() * x0_c + (1 - a).sqrt() * eps_c, x)  # still x_t = sqrt(ab) x0 + sqrt(1-ab) eps
    # an exact denoiser is untouched by a bound its data never reaches
    x_T = torch.randn(2, 8, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    a1 = sample_dpmpp_2m(Guided(gaussian_denoiser(sched), {}), x_T.clone(), sched, steps=20)
    a2 = sample_dpmpp_2m(Guided(gaussian_denoiser(sched), {}, clip_x0=50.0), x_T.clone(), sched, steps=20)
    assert torch.allclose(a1, a2)
