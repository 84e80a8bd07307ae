"""Recipe schema: unknown keys, wrong types, ranges and files give exact one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from beamc.errors import BeamcError
from beamc.recipe import dumps, load_recipe, parse_override, recipe_from_dict
from beamc.schema import SchemaError

import sys
if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[1]


def write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "r.toml"
    p.write_text(text)
    return p


BASE = (REPO / "recipes" / "sub6_ikd.toml").read_text()


def test_builtin_recipes_validate():
    for p in sorted((REPO / "recipes").glob("*.toml")):
        r = load_recipe(p)
        assert r.name == p.stem


def test_typo_key_did_you_mean(tmp_path):
    p = write(tmp_path, BASE.replace("temperature = 10.0", "temprature = 10.0"))
    with pytest.raises(SchemaError) as e:
        load_recipe(p)
    assert str(e.value) == f"{p}: unknown key 'distill.temprature' (did you mean 'distill.temperature'?)"


def test_unknown_top_level_table(tmp_path):
    p = write(tmp_path, BASE + "\n[trian]\nepochs = 1\n")
    with pytest.raises(SchemaError) as e:
        load_recipe(p)
    assert str(e.value) == f"{p}: unknown key 'trian' (did you mean 'train'?)"


def test_wrong_type_names_key_expected_and_found(tmp_path):
    p = write(tmp_path, BASE.replace("epochs = 20", 'epochs = "many"'))
    with pytest.raises(SchemaError) as e:
        load_recipe(p)
    assert str(e.value) == f"{p}: train.epochs: expected an integer, found 'many' (string)"


def test_out_of_range(tmp_path):
    p = write(tmp_path, BASE.replace("alpha = 0.9", "alpha = 1.5"))
    with pytest.raises(SchemaError) as e:
        load_recipe(p)
    assert str(e.value) == f"{p}: distill.alpha: expected a number >= 0 and <= 1, found 1.5"


def test_bad_choice(tmp_path):
    p = write(tmp_path, BASE.replace('optimizer = "adam"', 'optimizer = "adamm"'))
    with pytest.raises(SchemaError) as e:
        load_recipe(p)
    assert str(e.value) == f'{p}: train.optimizer: expected one of "adam", "adamw", "sgd", found \'adamm\' (string) (did you mean \'adam\'?)'


def test_unknown_model_and_method(tmp_path):
    p = write(tmp_path, BASE.replace('model = "sub6_student"', 'model = "sub6_studnet"'))
    with pytest.raises(SchemaError) as e:
        load_recipe(p)
    assert str(e.value).startswith(f"{p}: student.model: unknown model 'sub6_studnet' (did you mean 'sub6_student'?); known: ")
    p = write(tmp_path, BASE.replace('method = "ikd"', 'method = "kd"'))
    with pytest.raises(SchemaError) as e:
        load_recipe(p)
    assert "distill.method: unknown distillation method 'kd'" in str(e.value)


def test_unknown_model_arg(tmp_path):
    p = write(tmp_path, BASE.replace('model = "sub6_student"', 'model = "sub6_mlp"\nargs = { hiden = [8] }'))
    with pytest.raises(SchemaError) as e:
        load_recipe(p)
    assert str(e.value) == (f"{p}: unknown key 'student.args.hiden' (did you mean 'student.args.hidden'?); "
                            "sub6_mlp accepts: input_dim, hidden, num_beams, dropout")


def test_missing_file_and_bad_toml(tmp_path):
    with pytest.raises(BeamcError) as e:
        load_recipe(tmp_path / "nope.toml")
    assert str(e.value) == f"recipe not found: {tmp_path / 'nope.toml'}"
    p = write(tmp_path, "name = \n")
    with pytest.raises(BeamcError) as e:
        load_recipe(p)
    assert str(e.value).startswith(f"{p}: invalid TOML: ")


def test_overrides_apply_and_are_recorded(tmp_path):
    r = load_recipe(REPO / "recipes" / "sub6_ikd.toml", ["train.epochs=1", "distill.temperature=4", "train.device=cpu"])
    assert (r.train.epochs, r.distill.temperature, r.train.device) == (1, 4.0, "cpu")
    assert r.overrides == ("train.epochs=1", "distill.temperature=4", "train.device=cpu")
    text = dumps(r)
    assert "--set train.epochs=1" in text
    again = recipe_from_dict(tomllib.loads(text))
    assert again.to_dict() == r.to_dict()


def test_override_errors_name_the_flag():
    with pytest.raises(SchemaError) as e:
        load_recipe(REPO / "recipes" / "sub6_ikd.toml", ["train.epoch=1"])
    assert str(e.value) == "--set unknown key 'train.epoch' (did you mean 'train.epochs'?)"
    with pytest.raises(SchemaError) as e:
        load_recipe(REPO / "recipes" / "sub6_ikd.toml", ["train.epochs=0"])
    assert str(e.value) == "--set train.epochs: expected an integer >= 1, found 0"
    with pytest.raises(BeamcError) as e:
        parse_override("train.epochs")
    assert str(e.value) == "--set train.epochs: expected key.path=value"


def test_self_distillation_defaults_to_teacher_architecture():
    r = load_recipe(REPO / "recipes" / "sub6_self.toml")
    assert (r.student.model, r.student.args) == (r.teacher.model, r.teacher.args)
    with pytest.raises(SchemaError) as e:
        load_recipe(REPO / "recipes" / "sub6_self.toml", ["student.model=sub6_student"])
    assert "distill.method = 'self' needs the teacher's architecture" in str(e.value)


def test_teacher_train_overrides_merge():
    r = load_recipe(REPO / "recipes" / "sub6_ikd.toml", ["teacher.train.lr=0.01"])
    assert r.teacher_train.lr == 0.01 and r.teacher_train.epochs == r.train.epochs and r.train.lr == 1e-3
    with pytest.raises(SchemaError) as e:
        load_recipe(REPO / "recipes" / "sub6_ikd.toml", ["teacher.train.lrr=0.01"])
    assert "unknown key 'teacher.train.lrr' (did you mean 'teacher.train.lr'?)" in str(e.value)


def test_schema_reference_shows_the_task_defaults_of_nested_tables():
    # a task's data table builds its simulator config with its own defaults (camera+radar:
    # no LiDAR, 30 % night sequences); the reference must show those, not the simulator's
    from beamc.inspect import schema_rows

    rows = {k: d for k, _, d, _ in schema_rows("camera_radar")}
    assert rows["data.synth.night_fraction"] == "0.3" and rows["data.synth.lidar"] == "False"
    assert rows["data.synth.radar"] == "True"
    assert {k: d for k, _, d, _ in schema_rows("lidar")}["data.synth.camera"] == "False"


def test_a_partial_nested_table_keeps_the_task_defaults_it_leaves_out():
    # [data.synth] sequences = 40 in a vision recipe: still camera only (the task's factory),
    # not the simulator's every-sensor default that costs 1 MB of radar per frame
    r = load_recipe(REPO / "recipes" / "vision_teacher.toml", ["data.synth.other_vehicles=0.5"])
    synth = r.data.synth
    assert (synth.sequences, synth.other_vehicles) == (40, 0.5)
    assert (synth.camera, synth.lidar, synth.radar, synth.gps) == (True, False, False, False)
    lidar = load_recipe(REPO / "recipes" / "lidar_teacher.toml").data.synth
    assert (lidar.sequences, lidar.camera, lidar.lidar, lidar.radar) == (480, False, True, False)
    cr = load_recipe(REPO / "recipes" / "camera_radar_teacher.toml", ["data.synth.sequences=7"]).data.synth
    assert (cr.sequences, cr.night_fraction, cr.lidar, cr.radar) == (7, 0.3, False, True)
    with pytest.raises(SchemaError) as e:
        load_recipe(REPO / "recipes" / "vision_teacher.toml", ["data.synth.radr=true"])
    assert "unknown key 'data.synth.radr' (did you mean 'data.synth.radar'?)" in str(e.value)


def test_validate_lists_every_problem_and_load_stops_at_the_first(tmp_path):
    from beamc.recipe import recipe_problems

    p = write(tmp_path, BASE.replace('name = "sub6"', 'name = "sub6"\nfoo = 1')
              .replace('model = "sub6_teacher"', 'model = "sub6_teachr"').replace("alpha = 0.9", "alpha = 3")
              .replace("epochs = 20", "epochs = 0").replace("lr = 1e-3", 'lr = "x"'))
    problems = recipe_problems(p)
    # the known models end the line; other test modules register toy models
    assert problems[1].startswith(f"{p}: teacher.model: unknown model 'sub6_teachr' (did you mean 'sub6_teacher'?); "
                                  "known: camera_radar_student, ")
    assert problems[:1] + problems[2:] == [
        f"{p}: unknown key 'task.foo' (did you mean 'task.topk'?)",
        f"{p}: distill.alpha: expected a number >= 0 and <= 1, found 3.0",
        f"{p}: train.lr: expected a number, found 'x' (string)",
        f"{p}: train.epochs: expected an integer >= 1, found 0",
    ]
    with pytest.raises(SchemaError) as e:
        load_recipe(p)
    assert str(e.value) == f"{p}: unknown key 'task.foo' (did you mean 'task.topk'?)"
    assert recipe_problems(p, ["train.epochs=-1"])[-1] == "--set train.epochs: expected an integer >= 1, found -1"
    assert recipe_problems(REPO / "recipes" / "sub6_ikd.toml") == []
    assert recipe_problems(tmp_path / "nope.toml") == [f"recipe not found: {tmp_path / 'nope.toml'}"]
