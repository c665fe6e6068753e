"""The mode table is the one source of the modes: CLI choices, ModelSpec validation, dispatch, options."""

import pytest
from typer.testing import CliRunner

from edge_wbc.cli import app
from edge_wbc.converters.modes import (
    CONVERT_MODES,
    MODE_TABLE,
    QUANTIZATIONS,
    ConversionError,
    convert_keras,
    export_formats,
    resolve_options,
)
from edge_wbc.errors import SpecError
from edge_wbc.spec import MODES, ModelSpec


def test_spec_and_cli_read_the_table():
    from edge_wbc.cli.choices import Mode

    assert MODES == QUANTIZATIONS == ("keras", *MODE_TABLE)
    assert [m.value for m in Mode] == list(CONVERT_MODES)
    with pytest.raises(SpecError, match="valid choices are keras, float32"):
        ModelSpec("classification", 28, 28, ("a", "b"), quantization="int4")
    assert [r["mode"] for r in export_formats()] == list(CONVERT_MODES)


def test_each_mode_has_its_own_defaults():
    assert resolve_options("int8", {}) == {"io": "uint8", "per_tensor": False, "allow_float_fallback": False,
                                          "keep_float": None}
    assert resolve_options("int16x8", {}) == {"io": "float32"}
    assert resolve_options("float16", {}) == {}
    assert resolve_options("qat", {})["epochs"] == 8 and resolve_options("pruned", {})["epochs"] == 2
    assert resolve_options("pruned", {"sparsity": 0.7})["sparsity"] == 0.7


def test_an_option_of_another_mode_is_an_error_naming_its_modes():
    with pytest.raises(ConversionError, match="--sparsity does not apply to --mode int8: it applies to pruned"):
        resolve_options("int8", {"sparsity": 0.3})
    with pytest.raises(
        ConversionError, match="--io does not apply to --mode float16: it applies to int8, int16x8, qat"
    ):
        resolve_options("float16", {"io": "uint8"})
    with pytest.raises(ConversionError, match="invalid option 'sparsty' for --mode pruned"):
        resolve_options("pruned", {"sparsty": 0.3})
    with pytest.raises(ConversionError, match="invalid --io 'uint8' for int16x8: valid choices are float32, int16"):
        resolve_options("int16x8", {"io": "uint8"})
    with pytest.raises(ConversionError, match="invalid --clusters 'x': must be int"):
        resolve_options("clustered", {"clusters": "x"})


def test_dispatch_checks_options_before_converting():
    with pytest.raises(ConversionError, match="--clusters does not apply to --mode int8"):
        convert_keras(object(), None, "int8", clusters=4)  # no model is touched
    with pytest.raises(ConversionError, match="invalid mode 'int4': valid choices are float32"):
        convert_keras(object(), None, "int4")


def test_mode_functions_take_exactly_their_options():
    import inspect

    for m in MODE_TABLE.values():
        params = inspect.signature(m.fn).parameters
        assert not any(p.kind is p.VAR_KEYWORD for p in params.values()), m.name  # no **_ swallowing
        assert {o.name for o in m.options} <= set(params), m.name


def test_cli_refuses_an_option_the_mode_does_not_take(tmp_path):
    r = CliRunner().invoke(app, ["convert", str(tmp_path), "--mode", "int8", "--sparsity", "0.3"])
    assert r.exit_code == 2
    assert "--sparsity does not apply to --mode int8: it applies to pruned" in r.output
    r = CliRunner().invoke(app, ["convert", str(tmp_path), "--mode", "float32", "--ft-epochs", "3"])
    assert r.exit_code == 2 and "it applies to qat, pruned, clustered" in r.output
