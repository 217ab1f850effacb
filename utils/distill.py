"""Knowledge distillation (Hinton et al. 2015): train a (pruned) student to match a trained teacher's soft outputs.

loss = (1 - alpha) * CE(labels, smoothed) + alpha * T^2 * KL(p_teacher || p_student), both distributions softened
by temperature T; the T^2 keeps the soft term's gradients on the scale of the hard term's as T changes.

Optionally + beta * SP: similarity-preserving feature distillation (Tung & Mori, ICCV 2019) on the features the
classifier's last Linear reads. It compares how the images of a batch resemble each other (row-normalised B x B Gram
matrices), so it needs no projection between a pruned student's and its teacher's widths, and leaves the student
free to rearrange its channels.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

DISTILL_ALPHA = 0.5  # weight of the soft (teacher) term; chosen on digits, see README "Recovering accuracy"
DISTILL_T = 4.0  # temperature
DISTILL_FEATURES = 0.0  # weight of the feature term (0: logits only)


def distillation_loss(student_logits, teacher_logits, labels, alpha=DISTILL_ALPHA, temperature=DISTILL_T,
                      label_smoothing=0.0):
    """(1 - alpha) * CE(student, labels) + alpha * T^2 * KL(softmax(teacher/T) || softmax(student/T)), batch mean.

    Computed in float32 whatever the logits' dtype (AMP), as softmax of halves loses the small probabilities.
    """
    student_logits, teacher_logits = student_logits.float(), teacher_logits.float()
    hard = F.cross_entropy(student_logits, labels, label_smoothing=label_smoothing)
    if alpha == 0:
        return hard
    t = temperature
    soft = F.kl_div(F.log_softmax(student_logits / t, dim=1), F.log_softmax(teacher_logits / t, dim=1),
                    reduction="batchmean", log_target=True) * t * t
    return (1 - alpha) * hard + alpha * soft


def similarity_loss(student_features, teacher_features):
    """Similarity-preserving loss: mean squared difference of the row-normalised batch Gram matrices (float32)."""
    def similarity(features):
        features = features.float().flatten(1)
        return F.normalize(features @ features.T, dim=1)

    b = student_features.shape[0]
    return (similarity(student_features) - similarity(teacher_features)).pow(2).sum() / (b * b)


def last_linear(model):
    """A classifier's output layer (its last nn.Linear)."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no Linear output layer: not a classifier")
    return linears[-1]


def output_classes(model):
    """How many classes a classifier predicts (its last Linear's outputs)."""
    return last_linear(model).out_features


def check_distillation(alpha, temperature, features=0.0):
    """One-line ValueError for settings outside their range."""
    if not 0 <= alpha <= 1:
        raise ValueError(f"--distill-alpha must be in [0, 1], not {alpha}")
    if temperature <= 0:
        raise ValueError(f"--distill-t must be positive, not {temperature}")
    if features < 0:
        raise ValueError(f"--distill-features must be 0 or more, not {features}")


class FeatureTap:
    """Keeps the input of a classifier's last Linear from its latest forward (in training mode only, so that an
    EMA copy that inherited the hook, or a validation pass, never overwrites what the loss reads)."""

    def __init__(self, model, training_only=True):
        self.features, self.training_only = None, training_only
        self.handle = last_linear(model).register_forward_pre_hook(self._keep)

    def _keep(self, module, inputs):
        if module.training or not self.training_only:
            self.features = inputs[0]

    def remove(self):
        self.handle.remove()


class Distiller:
    """A frozen teacher and the distillation loss against it.

    The teacher stays in eval mode (BatchNorm running statistics, no dropout) with requires_grad off; it is not
    part of the student, so neither DDP nor the optimizer nor the EMA ever sees it.
    """

    def __init__(self, teacher, alpha=DISTILL_ALPHA, temperature=DISTILL_T, label_smoothing=0.0,
                 features=DISTILL_FEATURES):
        check_distillation(alpha, temperature, features)
        self.teacher = teacher.eval().requires_grad_(False)
        self.alpha, self.temperature, self.label_smoothing = alpha, temperature, label_smoothing
        self.features = features
        self.teacher_tap = FeatureTap(teacher, training_only=False) if features else None
        self.student_tap = None

    def watch(self, student):
        """Read the student's features from `student` (again after a model is replaced, e.g. cut after a fade)."""
        if self.features:
            if self.student_tap is not None:
                self.student_tap.remove()
            self.student_tap = FeatureTap(student)
        return self

    @torch.no_grad()
    def teacher_logits(self, images):
        self.teacher.eval()  # whatever a caller did to it: its BN statistics must not move
        return self.teacher(images)

    def __call__(self, student_logits, images, labels):
        """The loss of the student's logits on `images` (the same augmented batch the teacher sees); with a feature
        weight, the student's features from the forward that made `student_logits` (see watch())."""
        loss = distillation_loss(student_logits, self.teacher_logits(images), labels, self.alpha, self.temperature,
                                 self.label_smoothing)
        if self.features:
            if self.student_tap is None or self.student_tap.features is None:
                raise RuntimeError("Distiller.watch(student) must be called before feature distillation")
            loss = loss + self.features * similarity_loss(self.student_tap.features, self.teacher_tap.features)
            self.student_tap.features = None  # one forward, one loss
        return loss
