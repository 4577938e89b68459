import bpy


class TALKINGHEAD_OT_cancel(bpy.types.Operator):
    """Stop the running generation or adaptation; nothing is changed"""

    bl_idname = "talkinghead.cancel"
    bl_label = "Cancel"
    bl_options = {"INTERNAL"}

    @classmethod
    def poll(cls, context):
        return context.window_manager.talking_head_job.running

    def execute(self, context):
        context.window_manager.talking_head_job.cancel_requested = True
        return {"FINISHED"}
