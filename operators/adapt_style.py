import bpy

from ..blender.adapt_job import AdaptJob, compute_style, save_result
from ..blender.panel_request import adapt_request_from_panel
from ..core.errors import TalkingHeadError
from .threaded import ThreadedJobOperator


class TALKINGHEAD_OT_adapt_style(ThreadedJobOperator, bpy.types.Operator):
    """Learn the reference actor's way of speaking from an animated FLAME head and its sound, and save it as a style"""

    bl_idname = "talkinghead.adapt_style"
    bl_label = "Adapt Style"
    bl_options = {"REGISTER"}
    cancelled_message = "Adaptation cancelled; no style was written."

    def execute(self, context):
        """Synchronous path (scripts, EXEC_DEFAULT)."""
        try:
            request = adapt_request_from_panel(context)
            self.report({"INFO"}, save_result(request, compute_style(request)))
        except TalkingHeadError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        return {"FINISHED"}

    def make_job(self, context) -> AdaptJob:
        return AdaptJob(adapt_request_from_panel(context))

    def apply_result(self, job: AdaptJob) -> str:
        return save_result(job.request, job.result)
