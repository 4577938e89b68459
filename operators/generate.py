import bpy

from ..blender.job import GenerateJob, apply, compute
from ..blender.panel_request import request_from_panel
from ..core.errors import TalkingHeadError

# The running operator, so the Cancel button (and tests, which drive modal() by hand) can reach it
running_operator = None


class TALKINGHEAD_OT_generate(bpy.types.Operator):
    """Animate the active FLAME head from the chosen speech"""

    bl_idname = "talkinghead.generate"
    bl_label = "Generate"
    bl_options = {"REGISTER", "UNDO"}

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

    def invoke(self, context, event):
        """Interactive path: the work runs in a thread, modal() keeps the UI alive and applies the result."""
        if not self.start_job(context):
            return {"CANCELLED"}
        self._timer = context.window_manager.event_timer_add(0.1, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def start_job(self, context) -> bool:
        """Check the inputs and start the worker; False (with the reason reported) when they are bad."""
        global running_operator
        try:
            request = request_from_panel(context)
        except TalkingHeadError as exc:
            self.report({"ERROR"}, str(exc))
            return False
        state = context.window_manager.talking_head_job
        state.running, state.cancel_requested, state.progress, state.status = True, False, 0.0, "Starting"
        self._timer = None
        self._job = GenerateJob(request)
        self._job.start()
        running_operator = self
        return True

    def modal(self, context, event):
        state = context.window_manager.talking_head_job
        if event.type == "ESC" or state.cancel_requested:
            self._job.cancel()
            self._job.wait()  # the worker stops at its next check; nothing was written
            self._finish(context)
            self.report({"WARNING"}, "Generation cancelled; nothing was changed.")
            return {"CANCELLED"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        state.progress, state.status = self._job.progress, self._job.message
        self._redraw(context)
        if not self._job.done:
            return {"RUNNING_MODAL"}
        self._finish(context)
        if self._job.error:
            self.report({"ERROR"}, self._job.error)
            return {"CANCELLED"}
        try:
            self.report({"INFO"}, apply(self._job.request, self._job.result))
        except TalkingHeadError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        return {"FINISHED"}

    def _finish(self, context):
        global running_operator
        state = context.window_manager.talking_head_job
        state.running, state.cancel_requested, state.progress, state.status = False, False, 0.0, ""
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None
        running_operator = None
        self._redraw(context)

    @staticmethod
    def _redraw(context):
        for area in getattr(context.screen, "areas", []) if context.screen else []:
            if area.type == "VIEW_3D":
                area.tag_redraw()
