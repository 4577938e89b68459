import bpy

from ..core.errors import TopologyError
from ..preferences import missing_modules
from ..properties import model_samples


class TALKINGHEAD_PT_main(bpy.types.Panel):
    bl_label = "Talking Head"
    bl_idname = "TALKINGHEAD_PT_main"
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "Talking Head"

    def draw(self, context):
        layout = self.layout
        settings = context.scene.talking_head
        job = context.window_manager.talking_head_job

        missing = missing_modules()
        if missing:
            layout.label(text="Missing: " + ", ".join(missing), icon="ERROR")
            layout.label(text="See the add-on preferences for how to install them.")
            return

        self._draw_target(layout, context.active_object)

        col = layout.column(align=True)
        col.prop(settings, "audio_source", expand=True)
        if settings.audio_source == "STRIP":
            col.prop(settings, "strip", text="")
            col.prop(settings, "use_strip_start")
        else:
            col.prop(settings, "audio_file", text="")
        if settings.audio_source == "FILE" or not settings.use_strip_start:
            col.prop(settings, "start_frame")

        col = layout.column(align=True)
        col.prop(settings, "model")
        col.prop(settings, "emotion")
        col.prop(settings, "intensity", slider=True)
        col.prop(settings, "style")
        if model_samples(context, settings.model):
            row = col.row(align=True)
            row.prop(settings, "seed")
            row.prop(settings, "takes")
            col.prop(settings, "guidance")
        col.prop(settings, "lip_seal", slider=True)

        col = layout.column(align=True)
        col.prop(settings, "dialogue")
        col.prop(settings, "dialogue_text", text="Text")
        row = col.row(align=True)
        row.prop(settings, "transcribe")
        row.prop(settings, "word_markers")
        if settings.words_heard:
            box = layout.box()
            box.label(text="Words heard (copy into Dialogue to correct):", icon="OUTLINER_OB_SPEAKER")
            for line in _wrap(settings.words_heard, 48)[:6]:
                box.label(text=line)
            box.operator("talkinghead.use_words_heard", icon="COPYDOWN")

        col = layout.column(align=True)
        col.prop(settings, "output_mode", expand=True)
        if settings.output_mode == "CACHE":
            col.prop(settings, "cache_folder")
        col.prop(settings, "keep_takes")

        if job.running:
            layout.progress(factor=job.progress, type="BAR", text=job.status or "Working")
            layout.operator("talkinghead.cancel", icon="CANCEL")
        else:
            layout.operator("talkinghead.generate", icon="PLAY_SOUND")

    @staticmethod
    def _draw_target(layout, obj):
        problem = _target_problem(obj)
        if problem:
            box = layout.box()
            box.label(text="Target is not a FLAME head", icon="ERROR")
            for line in _wrap(problem, 48):
                box.label(text=line)
            return
        layout.label(text=f"Target: {obj.name} (FLAME)", icon="CHECKMARK")


# The panel redraws often; the topology check reads every triangle, so remember its verdict per mesh
# state. Generate checks again for real before it changes anything.
_verdicts: dict[tuple, str] = {}


def _target_problem(obj) -> str:
    from ..blender.target import check_target

    if obj is None or obj.type != "MESH":
        key = (None if obj is None else obj.name, None)
    else:
        mesh = obj.data
        key = (obj.name, mesh.as_pointer(), len(mesh.vertices), len(mesh.polygons), len(mesh.loops))
    if key not in _verdicts:
        try:
            check_target(obj)
            _verdicts[key] = ""
        except TopologyError as exc:
            _verdicts[key] = str(exc)
        if len(_verdicts) > 64:
            _verdicts.pop(next(iter(_verdicts)))
    return _verdicts[key]


def _wrap(text: str, width: int) -> list[str]:
    import textwrap

    return textwrap.wrap(text, width)
