"""What Generate and Adapt Style share: work in a worker thread under a modal operator, with a
progress bar, Cancel/Esc, and results written on the main thread only."""

from __future__ import annotations

from ..core.errors import TalkingHeadError


class ThreadedJobOperator:
    """Mixin for a modal operator. Subclasses provide `make_job(context)` (checks inputs, may
    raise TalkingHeadError, returns an unstarted job), `apply_result(job)` (main thread, returns
    a summary) and `cancelled_message`."""

    cancelled_message = "Cancelled; nothing was changed."

    @classmethod
    def poll(cls, context):
        return not context.window_manager.talking_head_job.running

    def invoke(self, context, event):
        """Interactive path: the work runs in a thread, modal() keeps the UI alive and applies the result."""
        if not self.start_job(context):
            return {"CANCELLED"}
        self._timer = context.window_manager.event_timer_add(0.1, window=context.window)
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def start_job(self, context) -> bool:
        """Check the inputs and start the worker; False (with the reason reported) when they are bad."""
        try:
            job = self.make_job(context)
        except TalkingHeadError as exc:
            self.report({"ERROR"}, str(exc))
            return False
        state = context.window_manager.talking_head_job
        state.running, state.cancel_requested, state.progress, state.status = True, False, 0.0, "Starting"
        self._timer = None
        self._job = job
        self._job.start()
        return True

    def modal(self, context, event):
        state = context.window_manager.talking_head_job
        if event.type == "ESC" or state.cancel_requested:
            self._job.cancel()
            self._job.wait()  # the worker stops at its next check; nothing was written
            self._finish(context)
            self.report({"WARNING"}, self.cancelled_message)
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
            self.report({"INFO"}, self.apply_result(self._job))
        except TalkingHeadError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        return {"FINISHED"}

    def _finish(self, context):
        state = context.window_manager.talking_head_job
        state.running, state.cancel_requested, state.progress, state.status = False, False, 0.0, ""
        if self._timer is not None:
            context.window_manager.event_timer_remove(self._timer)
            self._timer = None
        self._redraw(context)

    @staticmethod
    def _redraw(context):
        for area in getattr(context.screen, "areas", []) if context.screen else []:
            if area.type == "VIEW_3D":
                area.tag_redraw()
