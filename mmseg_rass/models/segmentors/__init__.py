from .restore_then_segment import RestoreThenSegment
from .sam_cascade_teacher import SAMCascadeTeacher
from .sam_distill_encoder_decoder import SAMDistillEncoderDecoder
from .sam_distill_teacher import SAMDistillTeacher
from .sam_prior_encoder_decoder import SAMPriorEncoderDecoder
from .segsr import SegSR

__all__ = [
    'RestoreThenSegment', 'SAMCascadeTeacher', 'SAMDistillEncoderDecoder', 'SAMDistillTeacher',
    'SAMPriorEncoderDecoder', 'SegSR'
]
