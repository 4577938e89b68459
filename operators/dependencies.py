import bpy
from bpy.props import BoolProperty, StringProperty

from ..blender.dependencies import InstallJob, install_request, run_install
from ..core.errors import TalkingHeadError
from .threaded import ThreadedJobOperator


def _preferences(context):
    from ..preferences import preferences

    return preferences(context)


class TALKINGHEAD_OT_install_dependencies(ThreadedJobOperator, bpy.types.Operator):
    """Install torch and the other Python packages Talking Head needs into its own user folder, from PyPI (online access) or from the wheel folder"""

    bl_idname = "talkinghead.install_dependencies"
    bl_label = "Install Dependencies"
    bl_options = {"REGISTER", "INTERNAL"}
    cancelled_message = "Installation cancelled; the packages installed before are unchanged."

    uninstall: BoolProperty(name="Uninstall", default=False, options={"HIDDEN", "SKIP_SAVE"})
    # requirements to install instead of Talking Head's own (space-separated; tests and advanced use)
    packages: StringProperty(name="Packages", default="", options={"HIDDEN", "SKIP_SAVE"})

    def request(self, context):
        prefs = _preferences(context)
        return install_request(prefs.wheel_folder if prefs else "", prefs.torch_build if prefs else "auto",
                               self.packages, self.uninstall, bool(prefs and prefs.video_packages))

    def execute(self, context):
        """Synchronous path (scripts, EXEC_DEFAULT)."""
        try:
            self.report({"INFO"}, run_install(self.request(context)))
        except TalkingHeadError as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        return {"FINISHED"}

    def make_job(self, context) -> InstallJob:
        return InstallJob(self.request(context))

    def apply_result(self, job: InstallJob) -> str:
        return job.result

    @staticmethod
    def _redraw(context):
        for window in context.window_manager.windows:
            for area in window.screen.areas:
                if area.type == "PREFERENCES":
                    area.tag_redraw()
