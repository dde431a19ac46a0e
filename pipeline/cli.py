"""The ``lensflow`` command line: one config object from flags + YAML into every command."""
from __future__ import annotations

import json
import os
import shutil
import sys
import traceback

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import warnings  # noqa: E402

import click  # noqa: E402

from lensflow.pipeline.cli_options import (config_option, explicit_keys, holding_home,  # noqa: E402
                                           home_option, make_config, set_option, wait_option)
from lensflow.pipeline.config import choices  # noqa: E402
from lensflow.pipeline import object_store  # noqa: E402

warnings.filterwarnings("ignore", category=FutureWarning)


class PathOrURI(click.ParamType):
    """A local path that must exist (made absolute), or a URI (``s3://``, ``gs://``) passed on
    as it is: ingestion lists and reads it through ``tf.io.gfile`` and names it if it fails."""

    name = "path_or_uri"

    def __init__(self, **path_options):
        self._path = click.Path(exists=True, **path_options)

    def convert(self, value, param, ctx):
        if object_store.is_uri(value):
            return value
        return os.path.abspath(self._path.convert(value, param, ctx))

@click.group()
def main():
    """lensflow: image folder -> validated, served image classifier (TFX)."""


@main.command()
@home_option
@config_option
@click.option("--data", type=PathOrURI(file_okay=False), help="Image folder or s3:// / gs:// prefix.")
@click.option("--manifest", type=PathOrURI(dir_okay=False),
              help="CSV path,label[,split] (a file or a URI; its paths may be URIs).")
@click.option("--epochs", type=int)
@click.option("--batch-size", type=int)
@click.option("--learning-rate", type=float)
@click.option("--image-size", type=int)
@click.option("--color-mode", type=click.Choice(choices("image.color_mode")))
@click.option("--model", "family", type=click.Choice(choices("model.family")))
@click.option("--backbone", type=click.Choice(choices("model.backbone")))
@click.option("--weights", help="'imagenet', 'none' or a path.")
@click.option("--fine-tune-epochs", type=int)
@click.option("--fine-tune-layers", type=int)
@click.option("--augment", type=click.Choice(choices("augment.preset")))
@click.option("--no-orientation-changes", is_flag=True, default=None,
              help="Forbid flips and rotations (orientation matters in this data).")
@click.option("--filter-mode", type=click.Choice(choices("model.filter_mode")))
@click.option("--min-accuracy", type=float)
@click.option("--tune/--no-tune", default=None, help="Run the KerasTuner stage first.")
@click.option("--no-cache", is_flag=True, default=False)
@click.option("--summary-json", type=click.Path(dir_okay=False), help="Write the run summary here.")
@wait_option
@set_option
def run(home, config_file, data, manifest, epochs, batch_size, learning_rate, image_size,
        color_mode, family, backbone, weights, fine_tune_epochs, fine_tune_layers, augment,
        no_orientation_changes, filter_mode, min_accuracy, tune, no_cache, summary_json, wait,
        sets):
    """Run the pipeline locally (LocalDagRunner, SQLite metadata, caching on)."""
    weights_flag = weights
    overrides = {
        "data.path": data, "data.manifest": manifest,
        "train.epochs": epochs, "train.batch_size": batch_size,
        "train.learning_rate": learning_rate, "image.size": image_size,
        "image.color_mode": color_mode, "model.family": family, "model.backbone": backbone,
        "train.fine_tune_epochs": fine_tune_epochs, "model.fine_tune_layers": fine_tune_layers,
        "augment.preset": augment, "model.filter_mode": filter_mode,
        "evaluation.min_accuracy": min_accuracy, "tuner.enabled": tune,
        "augment.allow_orientation_changes": False if no_orientation_changes else None,
        "enable_cache": False if no_cache else None,
    }
    cfg = make_config(config_file, home, sets, **overrides)
    if weights_flag is not None:
        cfg = cfg.replace(**{"model.weights": None if weights_flag.lower() == "none" else weights_flag})
    click.echo(f"lensflow: running pipeline '{cfg.pipeline_name}' on "
               f"{cfg.data.manifest or cfg.data.path}\n  home: {cfg.home_dir}")
    with holding_home(cfg.home_dir, wait):  # before the heavy imports: a refusal is quick
        from lensflow.components.trainer.choice import CUSTOM_CONFIG_KEY, describe, \
            record_for_training
        from lensflow.pipeline import auto_model
        from lensflow.pipeline import summary as run_summary
        from lensflow.pipeline.runners import local

        cfg, choice = auto_model.resolve(cfg, explicit_keys(config_file, sets, **overrides))
        click.echo("  model: " + describe(record_for_training({CUSTOM_CONFIG_KEY: choice}, cfg)))
        before = _known_runs(cfg.metadata_path, run_summary)
        error = None
        try:
            local.run(cfg, show_progress=True, model_choice=choice)
        except Exception as err:  # noqa: BLE001 - the run's outcome below says what happened
            error = err
        finally:
            result = _finish(cfg, summary_json, run_summary, before, error)
    code = _exit_code(result, error)
    if any(object_store.uses_s3(where) for where in
           (cfg.data.path, cfg.data.manifest, cfg.serving_dir)):
        object_store.exit_now(code)  # tensorflow-io's abort at exit (tensorflow/io#2039)
    click.get_current_context().exit(code)


def _known_runs(metadata_path, run_summary) -> list:
    """The run ids recorded so far, oldest first (so a summary is of this run, never an older one)."""
    try:
        return run_summary.run_ids(run_summary.open_store(metadata_path))
    except run_summary.RunNotFound:
        return []


def _with_error(result, error):
    """A run that raised is ``failed``, with the error among the reasons, unless its summary
    shows the data gate stopped it (the gate stops a run by raising)."""
    from lensflow.pipeline import outcome

    if error is not None and result["outcome"]["name"] != outcome.DATA_STOPPED.name:
        failed = result["outcome"]["name"] == outcome.FAILED.name
        reasons = result["outcome"]["reasons"] if failed else []
        result["outcome"] = {"name": outcome.FAILED.name, "exit_code": outcome.FAILED.code,
                             "reasons": [*reasons, f"{type(error).__name__}: {error}"]}
    return result


def _exit_code(result, error) -> int:
    """The exit code of the run's outcome (``pipeline/outcome.py``); ``failed`` without a
    summary. A failure's traceback goes to stderr (one line for a full disk, whose message
    says it all); a data stop's reasons are already shown."""
    from lensflow.pipeline import outcome

    from lensflow.pipeline.disk_errors import disk_cause

    code = result["outcome"]["exit_code"] if result else outcome.FAILED.code
    if error is not None and code == outcome.FAILED.code and disk_cause(error):
        click.echo(f"lensflow: out of disk space: {error}", err=True)  # no traceback to read
    elif error is not None and code == outcome.FAILED.code:
        click.echo("".join(traceback.format_exception(type(error), error, error.__traceback__)),
                   err=True)
    return code


def _finish(cfg, summary_json, run_summary, before=(), error=None):
    """Summarise the run just made, keep its report (the one RunReport wrote, or written now
    when that step did not run in this run), and print both; the summary, or None when this
    run recorded nothing."""
    from lensflow.components.report import reuse
    from lensflow.components.report.render import write_report

    new = [run_id for run_id in _known_runs(cfg.metadata_path, run_summary) if run_id not in before]
    if not new:
        click.echo("no summary: this run recorded nothing in ML Metadata", err=True)
        return None
    try:
        result = _with_error(run_summary.summarise(cfg.metadata_path, new[-1]), error)
    except run_summary.RunNotFound as err:
        click.echo(f"no summary: {err}", err=True)
        return None
    report_path = os.path.join(cfg.home_dir, "reports", f"{_safe(result['run_id'])}.html")
    os.makedirs(os.path.dirname(report_path), exist_ok=True)
    try:
        ran = result["executions"].get("RunReport")
        if result.get("report_uri") and ran == "COMPLETE":
            shutil.copyfile(result["report_uri"], report_path)  # this run's RunReport wrote it
            result["report_path"] = report_path
        else:  # a cached RunReport kept the sections its artifacts give: this run's are the same
            kept = reuse.path_beside(result["report_uri"]) if result.get("report_uri") and \
                ran == "CACHED" else None
            result["report_path"] = write_report(cfg.metadata_path, result["run_id"], report_path,
                                                 kept_sections=kept)
    except Exception as err:  # noqa: BLE001 - a report failure must not hide the run's outcome
        click.echo(f"report not written: {err}", err=True)
    click.echo("\n" + run_summary.format_text(result))
    if summary_json:
        run_summary.write_json(result, summary_json)
        click.echo(f"summary written to {summary_json}")
    return result


def _safe(run_id: str) -> str:
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in run_id)


@main.group()
def data():
    """Dataset helpers."""


@data.command("fashion-mnist")
@click.option("--out", required=True, type=click.Path(file_okay=False))
@click.option("--per-class", type=int, help="Keep the first N images of each class per split.")
@click.option("--idx-dir", default="/usr/share/datasets/fashion-mnist", show_default=True,
              help="Folder with the idx files (Debian package dataset-fashion-mnist).")
def fashion_mnist(out, per_class, idx_dir):
    """Write Fashion-MNIST as OUT/{train,test}/<class>/*.png (official splits kept apart)."""
    from lensflow.components.image_example_gen import fashion_mnist as fm

    try:
        counts = fm.export(out, idx_dir=idx_dir, per_class=per_class)
    except fm.DatasetMissing as err:
        raise click.ClickException(str(err)) from err
    for split, per in counts.items():
        click.echo(f"{split}: {sum(per.values())} images in {len(per)} classes -> {out}/{split}")


@data.command("emoji")
@click.option("--out", required=True, type=click.Path(file_okay=False))
@click.option("--per-class", type=int,
              help="Keep N concept groups per class (shared out over train/eval/test).")
@click.option("--vendors", default="fluent3d,noto", show_default=True,
              help="Comma-separated: fluent3d (npm @lobehub/fluent-emoji-3d), noto (Debian "
                   "fonts-noto-color-emoji).")
@click.option("--fluent-dir", default="/usr/share/datasets/emoji/fluent-emoji-3d",
              show_default=True, help="The unpacked npm package @lobehub/fluent-emoji-3d@1.1.0.")
@click.option("--noto-font", default="/usr/share/fonts/truetype/noto/NotoColorEmoji.ttf",
              show_default=True, help="NotoColorEmoji.ttf (Debian fonts-noto-color-emoji).")
@click.option("--emoji-test", default="/usr/share/unicode/emoji/emoji-test.txt",
              show_default=True, help="The labels (Debian unicode-data).")
def emoji_data(out, per_class, vendors, fluent_dir, noto_font, emoji_test):
    """Write multi-vendor emoji as OUT/{train,eval,test}/<Unicode group>/*.png, split by concept
    group (a concept's drawings never straddle splits), with manifest.csv and ATTRIBUTION.txt."""
    from lensflow.components.image_example_gen import emoji

    try:
        counts = emoji.export(out, emoji_test=emoji_test, fluent_dir=fluent_dir,
                              noto_font=noto_font, per_class=per_class,
                              vendors=[v.strip() for v in vendors.split(",") if v.strip()])
    except emoji.DatasetMissing as err:
        raise click.ClickException(str(err)) from err
    except ValueError as err:
        raise click.UsageError(str(err)) from err
    for split, per in counts.items():
        click.echo(f"{split}: {sum(per.values())} images in {len(per)} classes -> {out}/{split}")
    click.echo(f"licences: {out}/ATTRIBUTION.txt; provenance: {out}/manifest.csv")


@main.command()
@home_option
@config_option
@click.option("--run", "run_id", default="latest", show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON.")
def summary(home, config_file, run_id, as_json):
    """Summarise a past run from ML Metadata."""
    from lensflow.pipeline import summary as run_summary

    cfg = make_config(config_file, home)
    try:
        result = run_summary.summarise(cfg.metadata_path, run_id)
    except run_summary.RunNotFound as err:
        raise click.ClickException(str(err)) from err
    click.echo(json.dumps(result.to_dict(), indent=2) if as_json
               else run_summary.format_text(result))


@main.command()
@home_option
@config_option
@click.option("--json", "as_json", is_flag=True)
def models(home, config_file, as_json):
    """List model families and backbones, with where each backbone's weights come from."""
    from lensflow.components.trainer.backbones import list_backbones
    from lensflow.pipeline.registry import FAMILIES

    cfg = make_config(config_file, home)
    backbones = list_backbones(cfg.weights_cache_dir)
    families = {name: family.description for name, family in FAMILIES.items()}
    if as_json:
        click.echo(json.dumps({"families": families, "backbones": backbones}, indent=2))
        return
    click.echo("model families (--model):")
    click.echo(f"  {'auto':<13} the default: chosen from a sample of the data (README: How lensflow "
               "picks a model)")
    for name, text in families.items():
        click.echo(f"  {name:<13} {text}")
    click.echo("backbones for --model transfer (--backbone), weights='imagenet':")
    for entry in backbones:
        state = "available" if entry["available"] else "NOT available offline"
        click.echo(f"  {entry['name']:<18} {state:<22} {entry['weights_source']}")
        if not entry["available"]:
            click.echo(f"  {'':<18} {entry['detail']}")


def _register_stage_commands() -> None:
    """Commands whose code lives with their stage."""
    from lensflow.components.report.cli import report
    from lensflow.pipeline.compare.cli import compare
    from lensflow.pipeline.cli_kubeflow import compile_command, rehearse_command, submit_command
    from lensflow.serving.cli import predict, serve

    for command in (report, serve, predict, compile_command, rehearse_command, submit_command,
                    compare):
        main.add_command(command)


_register_stage_commands()

if __name__ == "__main__":
    sys.exit(main())
