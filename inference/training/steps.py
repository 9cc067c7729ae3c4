"""One task's training pieces: network, batches, loss and validation metrics."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from inference.training import metrics as M
from inference.training.dataset import TrainingCase
from inference.training.sampling import Sampling, grouped_picks
from inference.training.schedule import lr_factor, schedule_from_card
from inference.training.task_data import augmentation, prepare_case

FROC_RATES = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)
#: default images per step for classifiers: DenseNet's BatchNorm statistics from two images
#: are noise, and the running averages the engine uses then match nothing seen in training.
CLASSIFICATION_BATCH = 16
#: crops per step for the 3D tasks (one case, several crops)
CROP_BATCH = 2


def centernet_loss(out: Any, heat: Any, size: Any, mask: Any, size_weight: float = 0.1) -> Any:
    """Penalty-reduced focal loss on the centre logit + masked L1 on the box extents."""
    import torch
    import torch.nn.functional as F

    logit = out[:, 0:1]
    pos = heat.eq(1.0).float()
    pos_term = F.logsigmoid(logit) * (1 - torch.sigmoid(logit)) ** 2 * pos
    neg_term = F.logsigmoid(-logit) * torch.sigmoid(logit) ** 2 * (1 - heat) ** 4 * (1 - pos)
    focal = -(pos_term.sum() + neg_term.sum()) / pos.sum().clamp(min=1.0)
    l1 = ((out[:, 1:] - size).abs() * mask).sum() / (3 * mask.sum()).clamp(min=1.0)
    return focal + size_weight * l1


def balanced_picks(classes: Sequence[int], n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` indices into ``classes`` with every class drawn about equally often.

    Findings are usually rare (a few nodules among many normal films); sampled uniformly, a
    batch is mostly normals and the cheapest loss is "always normal". Each pick first draws a
    class uniformly, then a case of that class.
    """
    by_case = np.asarray(classes)
    groups = [np.flatnonzero(by_case == c) for c in np.unique(by_case)]
    if len(groups) < 2:
        return rng.integers(len(by_case), size=n)
    which = rng.permutation(np.arange(n) % len(groups))  # equal shares, shuffled
    return np.array([groups[k][rng.integers(len(groups[k]))] for k in which])


class TaskSteps:
    """Everything task-specific the loop in ``train.py`` needs, for one card and device."""

    def __init__(
        self,
        card: dict[str, Any],
        task: str,
        device: str,
        crop_zyx: Sequence[int] | None = None,
        sampling: Sampling | None = None,
    ) -> None:
        self.card, self.task, self.device = card, task, device
        #: how samples are drawn and perturbed; None: the card's ``training.sampling``
        self.sampling = sampling if sampling is not None else Sampling.from_card(card)
        #: the learning-rate schedule (``inference.training.schedule``)
        self.schedule = schedule_from_card(card, task)
        self.dims = int(card["spatial_dims"])
        patch = card.get("patch_size")
        self.patch_zyx: tuple[int, ...] | None = (
            tuple(int(p) for p in patch)[::-1] if patch else None
        )
        #: the training crop (3D tasks): the card's patch unless a smaller one is asked for
        self.crop_zyx = tuple(int(c) for c in crop_zyx) if crop_zyx else self.patch_zyx

    def prepare(self, case: TrainingCase) -> dict[str, Any]:
        return prepare_case(case, self.card, self.task)

    def build_network(self) -> Any:
        from inference.networks import build_network

        net = build_network(self.card["network"]["architecture"], self.card["network"]["kwargs"])
        if self.task == "detection":
            # Start the centre logits at a 1% prior so the focal loss does not explode.
            import torch

            last = [m for m in net.modules() if isinstance(m, torch.nn.modules.conv._ConvNd)][-1]
            if last.bias is not None:
                with torch.no_grad():
                    last.bias[0] = float(np.log(0.01 / 0.99))
        return net

    def default_batch_size(self) -> int:
        return CLASSIFICATION_BATCH if self.task == "classification" else CROP_BATCH

    def lr_factor(self, step: int, total: int) -> float:
        """Multiplier of the base learning rate at global ``step`` of ``total``: the card's
        ``training.lr_schedule`` (``inference.training.schedule``), else the task's default
        (classifiers warm up and follow a cosine, the 3D tasks keep a constant rate)."""
        return lr_factor(self.schedule, step, total)

    def augmentation(self, batch_size: int) -> Any:
        samples = batch_size if self.task != "classification" else 1
        return augmentation(
            self.task,
            self.crop_zyx,
            samples,
            self.dims,
            intensity=self.sampling.intensity,
            crop_class_ratios=self.sampling.crop_class_ratios,
        )

    def _keys(self) -> list[str]:
        return {
            "segmentation": ["image", "label"],
            "detection": ["image", "heat", "size", "size_mask", "centres"],
            "classification": ["image"],
        }[self.task]

    def batch(
        self, items: Sequence[dict[str, Any]], rng: np.random.Generator, aug: Any, batch_size: int
    ) -> dict[str, Any]:
        """Random crops of one random case (3D), or ``batch_size`` images (2D classes): drawn
        class-balanced, or as whole patients with ``sampling.group_by_patient``."""
        import torch

        keys = self._keys()
        if self.task == "classification":
            if self.sampling.group_by_patient:
                picks = grouped_picks([str(it["patient_id"]) for it in items], batch_size, rng)
            else:
                picks = balanced_picks([int(it["class"]) for it in items], batch_size, rng)
            samples = [aug({k: items[i][k] for k in keys}) for i in picks]
            target = torch.as_tensor([items[i]["class"] for i in picks], dtype=torch.long)
        else:
            item = items[int(rng.integers(len(items)))]
            samples = aug({k: item[k] for k in keys})
            samples = samples if isinstance(samples, list) else [samples]
            target = None
        out = {
            k: torch.stack([torch.as_tensor(np.asarray(s[k])) for s in samples]).float()
            for k in keys
            if k != "centres"
        }
        if target is not None:
            out["class"] = target
        return {k: v.to(self.device) for k, v in out.items()}

    def loss(self, net: Any, batch: dict[str, Any]) -> Any:
        import torch

        out = net(batch["image"])
        if self.task == "segmentation":
            from monai.losses import DiceCELoss

            return DiceCELoss(to_onehot_y=True, softmax=True)(out, batch["label"])
        if self.task == "detection":
            return centernet_loss(out, batch["heat"], batch["size"], batch["size_mask"])
        return torch.nn.functional.cross_entropy(out, batch["class"])

    def _predict(self, net: Any, image: np.ndarray) -> np.ndarray:
        import torch
        from monai.inferers import sliding_window_inference

        x = torch.as_tensor(image[None]).float().to(self.device)
        with torch.no_grad():
            # A classifier sees the whole (resized) image; the shipped one's card still names
            # a patch_size, and sliding windows over its logits crashed fine-tuning.
            if self.patch_zyx is None or self.task == "classification":
                return net(x)[0].cpu().numpy()
            inf = self.card.get("inference", {})
            y = sliding_window_inference(
                x,
                roi_size=self.patch_zyx,
                sw_batch_size=int(inf.get("sw_batch_size", 2)),
                predictor=net,
                overlap=float(inf.get("overlap", 0.25)),
                mode=str(inf.get("mode", "gaussian")),
            )
        return y[0].cpu().numpy()

    def validate(self, net: Any, items: Sequence[dict[str, Any]]) -> dict[str, float]:
        """Validation metrics on the card's grid (the final evaluation uses the engine)."""
        net.eval()
        try:
            if self.task == "segmentation":
                return self._validate_segmentation(net, items)
            if self.task == "detection":
                return self._validate_detection(net, items)
            return self._validate_classification(net, items)
        finally:
            net.train()

    def _validate_segmentation(self, net: Any, items: Sequence[dict[str, Any]]) -> dict[str, float]:
        labels = {e["index"]: e["name"] for e in self.card["labels"]}
        per: dict[int, list[float]] = {i: [] for i in labels}
        for item in items:
            pred = self._predict(net, item["image"]).argmax(0)
            for i, d in M.dice_per_label(pred, item["label"][0], labels).items():
                per[i].append(d)
        out = {f"val_dice_{labels[i]}": float(np.mean(v)) for i, v in per.items()}
        out["val_dice"] = float(np.mean(list(out.values())))
        return out

    def _validate_detection(self, net: Any, items: Sequence[dict[str, Any]]) -> dict[str, float]:
        from inference.tasks.detect import decode_centernet

        thr = self.card.get("thresholds", {})
        matches = []
        for item in items:
            found = decode_centernet(
                self._predict(net, item["image"]),
                score_threshold=0.05,
                nms_iou=float(thr.get("nms_iou", 0.1)),
            )
            boxes = [b for b, _ in found]
            scores = [s for _, s in found]
            matches.append(M.match_boxes(boxes, scores, item["boxes"], rule="centre"))
        f = M.froc(matches, FROC_RATES)
        return {
            "val_froc": f.mean_sensitivity,
            "val_sensitivity_at_1fp": f.at[1.0],
            "val_ap": M.average_precision(matches),
        }

    def _validate_classification(
        self, net: Any, items: Sequence[dict[str, Any]]
    ) -> dict[str, float]:
        import torch

        probs, truth = [], []
        for item in items:
            logits = self._predict(net, item["image"])
            probs.append(float(torch.softmax(torch.as_tensor(logits), 0)[1]))
            truth.append(int(item["class"]))
        # The decision threshold is chosen here, on the validation patients (Youden's J), and
        # the other numbers are reported at it: they are what the packaged card will claim.
        threshold = M.youden_threshold(truth, probs, default=0.5)
        pred = [int(p >= threshold) for p in probs]
        rep = M.classification_report(truth, pred)
        return {
            "val_accuracy": rep["accuracy"],
            "val_sensitivity": rep["sensitivity"],
            "val_specificity": rep["specificity"],
            "val_auc": M.roc_auc(truth, probs),
            "val_threshold": threshold,
        }
