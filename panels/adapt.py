import bpy


class TALKINGHEAD_PT_adapt(bpy.types.Panel):
    """Learn a new actor's speaking style from a reference performance in the scene"""

    bl_label = "Adapt Style"
    bl_idname = "TALKINGHEAD_PT_adapt"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Talking Head"
    bl_parent_id = "TALKINGHEAD_PT_main"
    bl_options = {"DEFAULT_CLOSED"}

    def draw(self, context):
        layout = self.layout
        settings = context.scene.talking_head
        job = context.window_manager.talking_head_job
        layout.prop(settings, "reference_kind", expand=True)
        col = layout.column(align=True)
        if settings.reference_kind == "VIDEO":
            col.prop(settings, "reference_object", text="Actor's Head")
            col.prop(settings, "reference_video")
            col.prop(settings, "reference_speech")
            layout.label(text="First and last frame of the video (its own frame numbers, from 1):")
        else:
            col.prop(settings, "reference_object")
            col.prop(settings, "reference_audio_source", expand=True)
            if settings.reference_audio_source == "STRIP":
                col.prop(settings, "reference_strip", text="")
            else:
                col.prop(settings, "reference_file", text="")
        row = layout.row(align=True)
        row.prop(settings, "reference_start")
        row.prop(settings, "reference_end")
        layout.prop(settings, "style_name")
        layout.prop(settings, "overwrite_style")
        if not job.running:
            layout.operator("talkinghead.adapt_style", icon="OUTLINER_DATA_ARMATURE")
