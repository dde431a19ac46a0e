"""``lensflow serve`` and ``lensflow predict`` (registered on the main ``lensflow`` group)."""
from __future__ import annotations

import json
import logging
import os
import signal
import threading
from typing import List, Optional

import click

from lensflow.pipeline import object_store
from lensflow.pipeline.cli_options import config_option, home_option, make_config


def _config_and_name(config_file, home, model_name):
    """The run config (with ``--model-name`` applied) and the served model's name."""
    cfg = make_config(config_file, home, **{"push.model_name": model_name})
    return cfg, cfg.push.model_name


@click.group(invoke_without_command=True)
@home_option
@config_option
@click.option("--model-dir", type=click.Path(file_okay=False),
              help="Folder holding the numeric versions (or its parent) [home's serving dir, or "
                   "the --model-config-file entry's base_path].")
@click.option("--model-name", help="Model name in the URLs [config push.model_name].")
@click.option("--model-config-file", type=click.Path(exists=True, dir_okay=False),
              help="TF Serving's models.config: its version policy and version labels are "
                   "honoured and re-read on every poll (e.g. the home's serving/models.config).")
@click.option("--rest-port", type=click.IntRange(0, 65535), default=8501, show_default=True,
              help="REST port (0: pick a free one).")
@click.option("--grpc-port", type=click.IntRange(0, 65535), default=8500, show_default=True,
              help="gRPC port (0: pick a free one).")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--poll-seconds", type=click.FloatRange(min=0.05), default=2.0, show_default=True,
              help="How often to look for new or removed versions.")
@click.option("--batching-parameters-file", type=click.Path(exists=True, dir_okay=False),
              help="Batch concurrent requests as TF Serving's BatchingParameters file says "
                   "(max_batch_size, batch_timeout_micros, max_enqueued_batches, "
                   "num_batch_threads; see serving/batching.py) [no batching].")
@click.pass_context
def serve(ctx, home, config_file, model_dir, model_name, model_config_file, rest_port, grpc_port,
          host, poll_seconds, batching_parameters_file):
    """Serve pushed models over TF Serving's REST and gRPC APIs.

    A stand-in for local development and tests; production serving is TF Serving itself
    (tensorflow_model_server --model_config_file=<serving_dir>/models.config). Versions replay
    their warmup requests before they are AVAILABLE. `lensflow serve labels` moves version
    labels."""
    if ctx.invoked_subcommand is not None:
        return
    from google.protobuf import text_format

    from lensflow.serving.batching import BatchingConfig
    from lensflow.serving.errors import ModelNotFound
    from lensflow.serving.model_store import resolve_model_base
    from lensflow.serving.server import STAND_IN_NOTICE, StandInServer

    cfg, name = _config_and_name(config_file, home, model_name)
    path = model_dir or _config_base_path(model_config_file, name) or cfg.serving_dir
    if not os.path.isdir(path):
        raise click.UsageError(f"{path} does not exist: nothing pushed yet? Run the pipeline "
                               f"or pass --model-dir")
    try:
        base = resolve_model_base(path, name)
    except ModelNotFound as err:
        raise click.UsageError(str(err)) from err
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        batching = BatchingConfig.from_file(batching_parameters_file) \
            if batching_parameters_file else None
    except (ValueError, text_format.ParseError) as err:
        raise click.UsageError(f"--batching-parameters-file: {err}") from err
    server = StandInServer(base, name, host, rest_port, grpc_port, poll_seconds,
                           model_config_file=model_config_file, batching=batching)
    try:
        server.start()
    except OSError as err:
        raise click.ClickException(f"cannot start: {err}") from err
    labels = ", ".join(f"{k}={v}" for k, v in sorted(server.store.labels.items()))
    click.echo(f"{STAND_IN_NOTICE}.\n  model: {name} from {base}\n"
               f"  REST: {server.rest_url}/v1/models/{name}\n  gRPC: {server.grpc_address}\n"
               + (f"  labels: {labels}\n" if labels else "")
               + (f"  batching: {batching}\n" if batching else "") + "  Ctrl-C to stop.")
    _wait_for_stop()
    server.stop()
    click.echo("stopped")


def _config_base_path(model_config_file: Optional[str], name: str) -> Optional[str]:
    """The base_path of ``name``'s entry in ``model_config_file`` (UsageError when absent)."""
    if not model_config_file:
        return None
    from lensflow.components.pusher import models_config

    entry = models_config.entry(models_config.read(model_config_file), name)
    if entry is None:
        raise click.UsageError(f"{model_config_file} has no model named {name!r}")
    return entry.base_path


def _label_pair(ctx, param, values):
    out = {}
    for value in values:
        label, sep, version = value.partition("=")
        if not sep or not version.isdigit():
            raise click.BadParameter(f"{value!r}: expected LABEL=VERSION, e.g. canary=1733150000")
        out[label] = int(version)
    return out


@serve.command("labels")
@click.option("--file", "path", type=click.Path(dir_okay=False),
              help="models.config to edit [the home's serving/models.config, written by the "
                   "Pusher]; e.g. kubeflow/serving/models.config for the cluster.")
@click.option("--set", "assign", multiple=True, callback=_label_pair, metavar="LABEL=VERSION",
              help="Point LABEL (e.g. stable, canary) at VERSION; repeatable.")
@click.option("--remove", multiple=True, metavar="LABEL", help="Drop LABEL; repeatable.")
@click.pass_context
def labels(ctx, path, assign, remove):
    """Show or move version labels in a models.config (TF Serving's ModelServerConfig).

    With labels the entry loads exactly the labelled versions plus the newest push; a label may
    name only a complete version on disk when the base path is on this machine or in a bucket
    (``--file s3://…/models.config``). TF Serving and
    `lensflow serve --model-config-file` re-read the file while running."""
    from lensflow.components.pusher import models_config
    from lensflow.components.pusher.versions import versions

    parent = ctx.parent.params
    cfg, name = _config_and_name(parent["config_file"], parent["home"], parent["model_name"])
    path = path or os.path.join(cfg.serving_dir, models_config.CONFIG_FILE)
    config = models_config.read(path)
    if not models_config.exists(path):
        raise click.UsageError(f"{path} does not exist: push a model first or pass --file")
    entry = models_config.entry(config, name)
    if entry is None:
        raise click.UsageError(f"{path} has no model named {name!r}")
    if assign or remove:
        local = object_store.is_uri(entry.base_path) or os.path.isdir(entry.base_path)
        on_disk = versions(entry.base_path) if local else None
        try:
            current = models_config.set_labels(path, name, assign, remove, on_disk,
                                               cfg.push.keep_versions)
        except ValueError as err:
            raise click.ClickException(str(err)) from err
        if not local:
            click.echo(f"note: {entry.base_path} is not on this machine; versions not checked")
    else:
        current = dict(entry.version_labels)
    click.echo(f"{path}: {name}")
    for label, version in sorted(current.items()):
        click.echo(f"  {label:<10} {version}")
    if not current:
        click.echo("  (no version labels)")
    if object_store.uses_s3(path):
        object_store.exit_now(0)  # tensorflow-io's abort at exit (tensorflow/io#2039)


def _wait_for_stop() -> None:
    """Block until Ctrl-C or SIGTERM."""
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass


@click.command()
@home_option
@config_option
@click.argument("images", nargs=-1, required=True, type=click.Path(exists=True, dir_okay=False))
@click.option("--model-dir", type=click.Path(exists=True, file_okay=False),
              help="SavedModel version folder, or a folder of versions (newest is used) "
                   "[home's serving dir].")
@click.option("--url", help="TF Serving REST endpoint, e.g. http://127.0.0.1:8501.")
@click.option("--grpc", "grpc_address", help="TF Serving gRPC address, e.g. 127.0.0.1:8500.")
@click.option("--model-name", help="Served model name [config push.model_name].")
@click.option("--version", type=click.IntRange(min=0), help="Ask a server for this version.")
@click.option("--top-k", type=click.IntRange(min=1), default=3, show_default=True)
@click.option("--class-names", type=click.Path(exists=True),
              help="Class names for a server's non-top classes: JSON list or model version "
                   "folder [the home's newest pushed version, when it matches].")
@click.option("--timeout", type=click.FloatRange(min=0.1), default=30.0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def predict(home, config_file, images, model_dir, url, grpc_address, model_name, version, top_k,
            class_names, timeout, as_json):
    """Top-k classes of IMAGE... from a local SavedModel or a TF Serving endpoint."""
    from lensflow.serving import client

    if sum(x is not None for x in (model_dir, url, grpc_address)) > 1:
        raise click.UsageError("give at most one of --model-dir, --url, --grpc")
    cfg, name = _config_and_name(config_file, home, model_name)
    try:
        data = [client.read_image(path) for path in images]
        predictor = _predictor(client, cfg, name, model_dir, url, grpc_address, version, timeout)
        result = predictor.predict(data)
        vocabulary = _vocabulary(client, cfg, name, predictor, class_names, result)
    except (client.PredictError, FileNotFoundError) as err:
        raise click.ClickException(str(err)) from err
    ranked = client.top_k(result, top_k, vocabulary)
    rows = [{"image": path, "model_version": result.version, "top_k": entries}
            for path, entries in zip(images, ranked)]
    click.echo(json.dumps(rows, indent=2) if as_json else _format(rows, predictor.source))


def _predictor(client, cfg, name, model_dir, url, grpc_address, version, timeout):
    if url:
        return client.RestPredictor(url, name, version, timeout)
    if grpc_address:
        return client.GrpcPredictor(grpc_address, name, version, timeout)
    if version is not None:
        raise click.UsageError("--version applies to --url and --grpc; pass the version folder "
                               "as --model-dir instead")
    return client.LocalPredictor(model_dir or cfg.serving_dir, name)


def _vocabulary(client, cfg, name, predictor, class_names, result) -> Optional[List[str]]:
    """Explicit names must match the model; the home's names are used only when they do."""
    if class_names:
        names = client.load_vocabulary(class_names)
        if not client.vocabulary_matches(names, result):
            raise client.PredictError(f"{class_names}: class names do not match the model's "
                                      f"answers (wrong model or version?)")
        return names
    if predictor.class_names:
        return predictor.class_names
    try:
        names = client.vocabulary_of(cfg.serving_dir, name)
    except (FileNotFoundError, client.PredictError):
        return None
    return names if client.vocabulary_matches(names, result) else None


def _format(rows, source) -> str:
    lines = [f"model: {source}"]
    for row in rows:
        version = f" (version {row['model_version']})" if row["model_version"] is not None else ""
        lines.append(f"{row['image']}{version}")
        lines += [f"  {e['class_name']:<16} {e['probability']:.4f}" for e in row["top_k"]]
    return "\n".join(lines)
