import bpy

from ..blender.job import GenerateJob, apply, compute
from ..blender.panel_request import request_from_panel
from ..core.errors import TalkingHeadError
from .threaded import ThreadedJobOperator


class TALKINGHEAD_OT_generate(ThreadedJobOperator, bpy.types.Operator):
    """Animate the active FLAME head from the chosen speech"""

    bl_idname = "talkinghead.generate"
    bl_label = "Generate"
    bl_options = {"REGISTER", "UNDO"}
    cancelled_message = "Generation cancelled; nothing was changed."

    @classmethod
    def poll(cls, context):
        return context.active_object is not None and not context.window_manager.talking_head_job.running

    def execute(self, context):
        """Synchronous path (scripts, EXEC_DEFAULT): blocks until the animation is written."""
        try:
            request = request_from_panel(context)
            self.report({"INFO"}, apply(request, compute(request)))
        except TalkingHeadError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        return {"FINISHED"}

    def make_job(self, context) -> GenerateJob:
        return GenerateJob(request_from_panel(context))

    def apply_result(self, job: GenerateJob) -> str:
        return apply(job.request, job.result)
