"""grm-track on a folder of synthetic frames: one x,y,w,h line per frame, clear errors on bad input."""

import cv2
import numpy as np
import pytest

from grm_ros.tracking import cli


@pytest.fixture
def frames_dir(tmp_path, sequence):
    folder = tmp_path / "img"
    folder.mkdir()
    for i, frame in enumerate(sequence[0], start=1):
        cv2.imwrite(str(folder / f"{i:05d}.png"), cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    (folder / "notes.txt").write_text("not a frame")
    return folder


def test_writes_one_box_per_frame(frames_dir, tmp_path, sequence, capsys):
    out = tmp_path / "res" / "boxes.txt"
    code = cli.main(["--frames", str(frames_dir), "--box", "40,50,20,24", "--out", str(out),
                     "--variant", "small_cpu", "--allow-random", "--geometry", "reference"])
    assert code == 0 and "4 boxes written" in capsys.readouterr().out
    boxes = np.loadtxt(out, delimiter=",")
    assert boxes.shape == (len(sequence[0]), 4)
    np.testing.assert_array_equal(boxes[0], [40, 50, 20, 24])
    assert np.all(boxes[1:, 2:] >= 10) and np.all(boxes[:, 0] + boxes[:, 2] <= 160 + 1e-3)


def test_errors_are_reported_not_raised(frames_dir, tmp_path, capsys):
    out = tmp_path / "boxes.txt"
    assert cli.main(["--frames", str(tmp_path / "missing"), "--box", "1,1,5,5", "--out", str(out)]) == 2
    assert "does not exist" in capsys.readouterr().err
    args = ["--frames", str(frames_dir), "--out", str(out), "--variant", "small_cpu", "--allow-random"]
    assert cli.main([*args, "--box", "500,500,5,5"]) == 2
    assert "entirely outside" in capsys.readouterr().err
    assert not out.exists()
    assert cli.main([*args[:2], "--out", str(tmp_path), "--variant", "small_cpu", "--allow-random",
                     "--box", "1,1,5,5"]) == 2  # --out a folder: refused before the model loads
    assert f"--out {tmp_path} is a folder" in capsys.readouterr().err
    assert cli.main([*args[:4], "--checkpoint", str(tmp_path), "--box", "1,1,5,5"]) == 2
    assert f"checkpoint {tmp_path} is a folder; name the .pth" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        cli.main([*args, "--box", "1,2,3"])
    assert "4 comma-separated numbers" in capsys.readouterr().err
