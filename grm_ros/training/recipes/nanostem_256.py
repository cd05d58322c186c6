"""The default model's recipe: GRM on NanoTrack's pretrained stem (variant ``nanostem_256``).

Why it looks like this (measured on 2 CPU cores, see the README's model card):
- the stem carries the appearance features, so the transformer, division and head learn first on a
  frozen stem at a high rate, then everything is fine-tuned with the stem at a tenth of the rate;
- the real training videos are few (26 sequences, ~3,000 frames) and a small model overfits them within
  minutes, so half the pairs are synthetic pastes of photographed objects on photographed scenes, and
  every search crop may be blurred, recoloured, partly occluded or given a look-alike distractor;
- the head starts at the focal loss's prior (score 0.01) and at the target's share of the crop (0.25),
  so the short run does not spend its first hundreds of steps unlearning a 0.5 everywhere;
- one pair in ten is negative (the search crop shows another object), which teaches the score to fall
  when the target is gone, so the LOST state can be calibrated.
"""

from grm_ros.training.recipe import Recipe, Stage

RECIPE = Recipe(
    variant="nanostem_256",
    data=("sot_train@1", "synthetic@1"),
    stages=(
        Stage("frozen_stem", steps=500, lr=4e-4, stem_lr_scale=0.0, lr_drop_at=1.0),
        Stage("finetune", steps=300, lr=2e-4, stem_lr_scale=0.1, lr_drop_at=0.75),
    ),
    batch=32,
    seed=0,
    sampler={
        "center_jitter": 3.0,
        "scale_jitter": 0.25,
        "p_blur": 0.2,
        "p_color": 0.3,
        "p_occlude": 0.15,
        "p_distractor": 0.2,
        "p_negative": 0.1,
    },
    snapshot_every=100,
    score_prior=0.01,
    size_prior=0.25,
)
