"""Knowledge distillation (Hinton et al. 2015): train a (pruned) student to match a trained teacher's soft outputs.

loss = (1 - alpha) * CE(labels, smoothed) + alpha * T^2 * KL(p_teacher || p_student), both distributions softened
by temperature T; the T^2 keeps the soft term's gradients on the scale of the hard term's as T changes.
"""

import torch
import torch.nn as nn
import torch.nn.functional as F

DISTILL_ALPHA = 0.5  # weight of the soft (teacher) term; chosen on digits, see README "Recovering accuracy"
DISTILL_T = 4.0  # temperature


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


def output_classes(model):
    """How many classes a classifier predicts (its last Linear's outputs)."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ValueError(f"{type(model).__name__} has no Linear output layer: not a classifier")
    return linears[-1].out_features


def check_distillation(alpha, temperature):
    """One-line ValueError for settings outside their range."""
    if not 0 <= alpha <= 1:
        raise ValueError(f"--distill-alpha must be in [0, 1], not {alpha}")
    if temperature <= 0:
        raise ValueError(f"--distill-t must be positive, not {temperature}")


class Distiller:
    """A frozen teacher and the distillation loss against it.

    The teacher stays in eval mode (BatchNorm running statistics, no dropout) with requires_grad off; it is not
    part of the student, so neither DDP nor the optimizer nor the EMA ever sees it.
    """

    def __init__(self, teacher, alpha=DISTILL_ALPHA, temperature=DISTILL_T, label_smoothing=0.0):
        check_distillation(alpha, temperature)
        self.teacher = teacher.eval().requires_grad_(False)
        self.alpha, self.temperature, self.label_smoothing = alpha, temperature, label_smoothing

    @torch.no_grad()
    def teacher_logits(self, images):
        self.teacher.eval()  # whatever a caller did to it: its BN statistics must not move
        return self.teacher(images)

    def __call__(self, student_logits, images, labels):
        """The loss of the student's logits on `images` (the same augmented batch the teacher sees)."""
        return distillation_loss(student_logits, self.teacher_logits(images), labels, self.alpha, self.temperature,
                                 self.label_smoothing)
