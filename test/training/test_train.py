"""A short CPU run reduces the loss and leaves a checkpoint that the normal loader accepts."""

import pytest
import torch
import yaml

from grm_ros.model import GRM, load_model, read_checkpoint
from grm_ros.training.cli import build_model, train_main
from grm_ros.training.losses import tracking_loss
from grm_ros.training.sampler import PairDataset, SyntheticSource
from grm_ros.training.trainer import FINAL, LATEST, Trainer, TrainSettings

STEPS = 40


def _batch(dataset: PairDataset, first: int, size: int) -> dict[str, torch.Tensor]:
    return torch.utils.data.default_collate([dataset[first + i] for i in range(size)])


def _loss(model, batch) -> float:
    torch.manual_seed(123)  # same Gumbel draws before and after training
    with torch.no_grad():
        return tracking_loss(model(batch["template"], batch["search"]), batch["search_box"])[0].item()


def test_short_cpu_run_reduces_loss_and_checkpoint_loads(
    tmp_path, tiny_cfg, tiny_sampler, procedural_train, small_params
):
    torch.manual_seed(0)
    model = GRM(tiny_cfg)
    few_videos = SyntheticSource(count=8, seed=0, params=small_params, material=procedural_train)
    dataset = PairDataset([few_videos], tiny_sampler, seed=0)
    probe = _batch(dataset, 10**9, 8)  # indices the run never reaches
    settings = TrainSettings(
        steps=STEPS,
        batch_size=6,
        lr=3e-3,
        backbone_lr_scale=1.0,
        out_dir=tmp_path,
        log_every=1000,
        save_every=1000,
        seed=0,
    )
    trainer = Trainer(model, dataset, settings)
    before = _loss(trainer.model, probe)
    result = trainer.run()
    assert result.steps == STEPS

    loaded = load_model(tiny_cfg, result.checkpoint)
    trainer.model.eval()
    with torch.no_grad():
        expected = trainer.model(probe["template"], probe["search"])["score_map"]
        assert torch.equal(loaded(probe["template"], probe["search"])["score_map"], expected)
    after = _loss(trainer.model.train(), probe)
    assert after < 0.8 * before, (before, after)
    ckpt = read_checkpoint(result.checkpoint)
    assert ckpt["net_type"] == "GRM" and "optimizer" not in ckpt and ckpt["step"] == STEPS


def test_lr_groups_schedule_and_clipping(tmp_path, tiny_cfg, small_source, tiny_sampler):
    settings = TrainSettings(steps=10, batch_size=2, lr=4e-4, out_dir=tmp_path, lr_drop_at=0.5)
    trainer = Trainer(GRM(tiny_cfg), PairDataset([small_source], tiny_sampler), settings)
    lrs = {g["name"]: g["lr"] for g in trainer.optimizer.param_groups}
    assert lrs == {"head_and_division": 4e-4, "backbone": 4e-5}
    trainer.step = 5
    trainer._set_lr(trainer.progress(0.0))
    assert [g["lr"] for g in trainer.optimizer.param_groups] == pytest.approx([4e-5, 4e-6])
    stats = trainer.train_step(_batch(trainer.dataset, 0, 2))
    total = torch.sqrt(sum(p.grad.pow(2).sum() for p in trainer.model.parameters() if p.grad is not None))
    assert stats["grad_norm"] > 0.1 and total.item() <= 0.1 + 1e-5  # clipped to 0.1


def test_time_budget_stops_early_and_resume_continues(tmp_path, tiny_cfg, small_source, tiny_sampler):
    dataset = PairDataset([small_source], tiny_sampler)
    settings = TrainSettings(steps=1000, time_budget=0.5, batch_size=2, out_dir=tmp_path, log_every=1000)
    first = Trainer(GRM(tiny_cfg), dataset, settings)
    stopped = first.run().steps
    assert 0 < stopped < 1000
    settings = TrainSettings(steps=stopped + 2, batch_size=2, out_dir=tmp_path, log_every=1000)
    second = Trainer(GRM(tiny_cfg), dataset, settings)
    second.resume(tmp_path / LATEST)
    assert second.step == stopped
    assert all(
        torch.equal(a, b)
        for a, b in zip(first.model.state_dict().values(), second.model.state_dict().values(), strict=True)
    )
    assert second.run().steps == stopped + 2
    assert read_checkpoint(tmp_path / LATEST)["step"] == stopped + 2


def test_cli_trains_exports_and_refuses_evaluation_data(tmp_path, tiny_cfg, monkeypatch, caplog):
    variant = tmp_path / "tiny.yaml"
    variant.write_text(yaml.safe_dump(tiny_cfg.to_dict()))
    out, export = tmp_path / "run", tmp_path / "weights" / "tiny.pth"
    args = f"--variant {variant} --data synthetic --steps 2 --batch 2 --out {out} --export {export}"
    args += " --eval-pairs 3"
    with caplog.at_level("INFO", logger="grm_ros.training"):
        assert train_main(args.split()) == 0
    assert (out / FINAL).is_file() and (out / LATEST).is_file()
    assert "held-out synthetic pairs (3)" in caplog.text and "'iou'" in caplog.text
    load_model(str(variant), export)

    shared = tmp_path / "shared"
    (shared / "sot").mkdir(parents=True)
    monkeypatch.setenv("GRM_SHARED", str(shared))
    with pytest.raises(ValueError, match="evaluation"):
        train_main(["--variant", str(variant), "--data", f"uniform={shared / 'sot'}", "--steps", "1"])


def test_backbone_starts_from_user_supplied_vit_weights(tmp_path, tiny_cfg):
    source = GRM(tiny_cfg).backbone.state_dict()
    release = {"model": {k: v for k, v in source.items() if not k.startswith("pos_embed_")}}
    release["model"]["head.weight"] = torch.zeros(10, tiny_cfg.embed_dim)  # classifier: not ours
    path = tmp_path / "deit_like.pth"
    torch.save(release, path)
    model = build_model_from(tiny_cfg, tmp_path, path)
    assert torch.equal(model.backbone.blocks[1].attn.qkv.weight, source["blocks.1.attn.qkv.weight"])
    assert not torch.equal(model.backbone.pos_embed_x, GRM(tiny_cfg).backbone.pos_embed_x)

    wider = torch.zeros(1, 1 + tiny_cfg.pretrain_grid**2, 2 * tiny_cfg.embed_dim)
    torch.save({"model": {"pos_embed": wider}}, path)
    with pytest.raises(ValueError, match="width 64 cannot initialise"):
        build_model_from(tiny_cfg, tmp_path, path)


def build_model_from(cfg, tmp_path, weights):
    variant = tmp_path / "variant.yaml"
    variant.write_text(yaml.safe_dump(cfg.to_dict()))
    return build_model(str(variant), weights, seed=5)
