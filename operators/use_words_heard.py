import bpy


class TALKINGHEAD_OT_use_words_heard(bpy.types.Operator):
    """Copy the words the last Generate heard into Dialogue, to correct them and generate again"""

    bl_idname = "talkinghead.use_words_heard"
    bl_label = "Edit as Dialogue"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return bool(context.scene.talking_head.words_heard)

    def execute(self, context):
        settings = context.scene.talking_head
        settings.dialogue = settings.words_heard
        settings.dialogue_text = None
        return {"FINISHED"}
