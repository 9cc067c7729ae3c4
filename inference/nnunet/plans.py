"""plans.json + dataset.json of an nnU-Net v2 trained-model folder, read as data.

``read_config`` validates what inference needs for the configuration the checkpoint was
trained with (inheritance resolved, plans older than nnU-Net 2.3 converted as nnU-Net does)
and returns a frozen :class:`~inference.nnunet.config.NnunetConfig`; every error names the
file and the field.
"""

from __future__ import annotations

from typing import Any

from inference.nnunet.config import (
    RESAMPLING_FN,
    NnunetConfig,
    Resampling,
    _channel_names,
    _check_network_dims,
    _labels,
    _mirror_axes,
    _normalization,
    _patch,
    _perm,
    _reader,
    _resampling,
)
from inference.nnunet.jsondata import Fields
from inference.nnunet.network import check_network


def read_config(
    plans: Any,
    dataset: Any,
    configuration: str,
    trainer: str,
    mirror_axes: Any,
    plans_file: str = "plans.json",
    dataset_file: str = "dataset.json",
) -> NnunetConfig:
    """Validate plans.json / dataset.json data for ``configuration`` (from the checkpoint)."""
    pf, df = Fields(plans_file), Fields(dataset_file)
    plans = pf.obj(plans, "(top level)")
    dataset = df.obj(dataset, "(top level)")
    # dataset.json
    channels_raw = dataset.get("channel_names", dataset.get("modality"))
    channels = _channel_names(df, channels_raw, "channel_names")
    if dataset.get("regions_class_order") is not None:
        raise df.error(
            "regions_class_order",
            "is set: region-based nnU-Net models (overlapping regions, e.g. BraTS) are not supported",
        )
    labels = _labels(df, df.get(dataset, "", "labels"), "labels")
    reader = dataset.get("overwrite_image_reader_writer") or plans.get("image_reader_writer")
    reader = _reader(pf, reader, "image_reader_writer")
    # plans.json
    configs = pf.obj(pf.get(plans, "", "configurations"), "configurations")
    cfg = _resolve(pf, configs, configuration)
    where = f"configurations.{configuration}"
    if cfg.get("previous_stage") is not None:
        raise pf.error(
            f"{where}.previous_stage",
            "is set: cascade stages need the low-resolution stage's prediction and are not supported",
        )
    preprocessor = cfg.get("preprocessor_name", "DefaultPreprocessor")
    if preprocessor != "DefaultPreprocessor":
        raise pf.error(
            f"{where}.preprocessor_name",
            f"{str(preprocessor)[:80]!r} is not supported (only nnU-Net's DefaultPreprocessor)",
        )
    patch = _patch(pf, pf.get(cfg, where, "patch_size"), f"{where}.patch_size")
    dims = len(patch)
    spacing = pf.num_list(pf.get(cfg, where, "spacing"), f"{where}.spacing", dims, 0.0, 1e5)
    schemes = pf.get(cfg, where, "normalization_schemes")
    masks = pf.get(cfg, where, "use_mask_for_norm")
    if not isinstance(schemes, list) or len(schemes) != len(channels):
        raise pf.error(
            f"{where}.normalization_schemes",
            f"must list one scheme per channel of {dataset_file} ({len(channels)})",
        )
    if not isinstance(masks, list) or len(masks) != len(channels):
        raise pf.error(
            f"{where}.use_mask_for_norm", f"must list one flag per channel ({len(channels)})"
        )
    props_all = plans.get("foreground_intensity_properties_per_channel")
    if props_all is None:
        props_all = plans.get("foreground_intensity_properties_by_modality")
    norms = []
    for c in range(len(channels)):
        props = None
        if schemes[c] == "CTNormalization":
            props_all = pf.obj(props_all, "foreground_intensity_properties_per_channel")
            props = pf.obj(
                pf.get(props_all, "foreground_intensity_properties_per_channel", str(c)),
                f"foreground_intensity_properties_per_channel.{c}",
            )
        norms.append(
            _normalization(
                pf,
                f"{where}.normalization_schemes[{c}]",
                schemes[c],
                masks[c],
                props,
                f"foreground_intensity_properties_per_channel.{c}",
            )
        )
    arch = cfg.get("architecture")
    if arch is None:
        arch = _old_format_architecture(pf, cfg, where, dims)
    arch = pf.obj(arch, f"{where}.architecture")
    net = check_network(
        pf,
        f"{where}.architecture",
        arch.get("network_class_name"),
        arch.get("arch_kwargs"),
        len(channels),
        len(labels),
    )
    _check_network_dims(pf, f"{where}.architecture", net, dims)
    return NnunetConfig(
        configuration=configuration,
        trainer=trainer,
        plans_name=str(plans.get("plans_name") or "nnUNetPlans")[:100],
        dataset_name=str(plans.get("dataset_name") or dataset.get("name") or "nnU-Net model")[:100],
        reader=reader,
        transpose_forward=_perm(pf, pf.get(plans, "", "transpose_forward"), "transpose_forward"),
        transpose_backward=_perm(pf, pf.get(plans, "", "transpose_backward"), "transpose_backward"),
        spacing=tuple(spacing),
        patch_size=patch,
        normalization=tuple(norms),
        resampling_data=_plans_resampling(pf, cfg, where, "data"),
        resampling_probabilities=_plans_resampling(pf, cfg, where, "probabilities"),
        network=net,
        labels=labels,
        channel_names=channels,
        mirror_axes=_mirror_axes(
            pf, mirror_axes, dims, "inference_allowed_mirroring_axes (checkpoint)"
        ),
    )._checked(pf, "")


def _resolve(f: Fields, configs: dict, name: str, seen: tuple[str, ...] = ()) -> dict:
    if name not in configs:
        raise f.error(
            f"configurations.{name}",
            f"is missing (the checkpoint was trained with it); the file has {', '.join(list(configs)[:10])}",
        )
    if name in seen or len(seen) > 5:
        raise f.error(f"configurations.{name}.inherits_from", "forms a loop")
    cfg = f.obj(configs[name], f"configurations.{name}")
    parent = cfg.get("inherits_from")
    if parent is None:
        return dict(cfg)
    if not isinstance(parent, str):
        raise f.error(f"configurations.{name}.inherits_from", "must be a configuration name")
    base = _resolve(f, configs, parent, (*seen, name))
    base.update(cfg)
    return base


def _old_format_architecture(f: Fields, cfg: dict, where: str, dims: int) -> dict:
    """Plans written before nnU-Net 2.3 describe the UNet with separate keys (nnU-Net's own
    ConfigurationManager converts them the same way)."""
    name = cfg.get("UNet_class_name")
    if name not in ("PlainConvUNet", "ResidualEncoderUNet"):
        raise f.error(
            f"{where}.architecture",
            "is missing, and UNet_class_name is not PlainConvUNet or ResidualEncoderUNet",
        )
    enc = f.get(cfg, where, "n_conv_per_stage_encoder")
    if not isinstance(enc, list):
        raise f.error(f"{where}.n_conv_per_stage_encoder", "must be a list")
    n = len(enc)
    base = f.integer(
        f.get(cfg, where, "UNet_base_num_features"), f"{where}.UNet_base_num_features", 1, 4096
    )
    top = f.integer(
        f.get(cfg, where, "unet_max_num_features"), f"{where}.unet_max_num_features", 1, 4096
    )
    return {
        "network_class_name": name,
        "arch_kwargs": {
            "n_stages": n,
            "features_per_stage": [min(base * 2**i, top) for i in range(min(n, 12))],
            "conv_op": f"Conv{dims}d",
            "kernel_sizes": f.get(cfg, where, "conv_kernel_sizes"),
            "strides": f.get(cfg, where, "pool_op_kernel_sizes"),
            ("n_conv_per_stage" if name == "PlainConvUNet" else "n_blocks_per_stage"): enc,
            "n_conv_per_stage_decoder": f.get(cfg, where, "n_conv_per_stage_decoder"),
            "conv_bias": True,
            "norm_op": f"InstanceNorm{dims}d",
            "norm_op_kwargs": {"eps": 1e-05, "affine": True},
            "dropout_op": None,
            "dropout_op_kwargs": None,
            "nonlin": "LeakyReLU",
            "nonlin_kwargs": {"inplace": True},
        },
    }


def _plans_resampling(f: Fields, cfg: dict, where: str, kind: str) -> Resampling:
    fn_field = f"{where}.resampling_fn_{kind}"
    fn = f.get(cfg, where, f"resampling_fn_{kind}")
    if fn != RESAMPLING_FN:
        raise f.error(fn_field, f"{str(fn)[:80]!r} is not supported (only {RESAMPLING_FN})")
    kw = f.obj(f.get(cfg, where, f"resampling_fn_{kind}_kwargs"), f"{fn_field}_kwargs")
    if kw.get("is_seg", False) is not False:
        raise f.error(f"{fn_field}_kwargs.is_seg", "must be false for images and probabilities")
    return _resampling(f, kw, f"{fn_field}_kwargs")
