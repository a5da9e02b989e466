"""Video: the engine driven over a frame sequence, one concern per module.

    geometry.py   a video's geometry, computed once per unit: shape, frames, flow side, segments
    segments.py   where each segment keeps its frames; the work folder made ready
    frames.py     the frame loop: warm start along the flow, temporal loss, cuts, resume
    flow.py       the optimiser's optical flow (DIS), warping, consistency masks
    cuts.py       scene-cut detection
    assemble.py   saved frames + audio into the mp4, crossfades, flicker measured
    metrics.py    E_warp with a flow of its own (Farneback), independent of flow.py

The recipe that runs them for a unit (segments, then the assembly) is `work/video.py`'s.
"""
