"""FaceMesh landmark index groups (478-point topology with iris refinement)."""

from __future__ import annotations

# lips, each ordered from the subject's right corner (image left) to the left corner
UPPER_INNER_LIP = (78, 191, 80, 81, 82, 13, 312, 311, 310, 415, 308)
LOWER_INNER_LIP = (78, 95, 88, 178, 87, 14, 317, 402, 318, 324, 308)
UPPER_OUTER_LIP = (61, 185, 40, 39, 37, 0, 267, 269, 270, 409, 291)
LOWER_OUTER_LIP = (61, 146, 91, 181, 84, 17, 314, 405, 321, 375, 291)
MOUTH_CORNERS = (61, 291)
INNER_CORNERS = (78, 308)
LIP_GAP = (13, 14)

# lower face contour, cheek to cheek through the chin
JAW = (234, 93, 132, 58, 172, 136, 150, 149, 176, 148, 152, 377, 400, 378, 379, 365, 397, 288, 361, 323, 454)
CHIN = 152
SUBNASALE = 2
NOSE_BRIDGE = (6, 168, 197)
NOSE_TIP = 1
FACE_OVAL = (
    10, 338, 297, 332, 284, 251, 389, 356, 454, 323, 361, 288, 397, 365, 379, 378, 400, 377,
    152, 148, 176, 149, 150, 136, 172, 58, 132, 93, 234, 127, 162, 21, 54, 103, 67, 109,
)

# eyes: (upper lid, lower lid), each from outer to inner corner or the reverse
RIGHT_EYE_UPPER = (33, 246, 161, 160, 159, 158, 157, 173, 133)
RIGHT_EYE_LOWER = (33, 7, 163, 144, 145, 153, 154, 155, 133)
LEFT_EYE_UPPER = (263, 466, 388, 387, 386, 385, 384, 398, 362)
LEFT_EYE_LOWER = (263, 249, 390, 373, 374, 380, 381, 382, 362)
RIGHT_BROW = (70, 63, 105, 66, 107)  # upper edge, outer to inner
LEFT_BROW = (300, 293, 334, 296, 336)
RIGHT_BROW_LOW = (46, 53, 52, 65, 55)  # lower edge, outer to inner
LEFT_BROW_LOW = (276, 283, 282, 295, 285)
EYE_CORNERS = (33, 133, 362, 263)

# skin patches (polygons) for appearance checks: smooth skin between the features
RIGHT_CHEEK = (117, 118, 101, 36, 205, 187, 123)
LEFT_CHEEK = (346, 347, 330, 266, 425, 411, 352)
FOREHEAD = (67, 109, 10, 338, 297, 299, 337, 151, 108, 69)
RIGHT_EYE = RIGHT_EYE_UPPER + RIGHT_EYE_LOWER[-2:0:-1]  # closed contours
LEFT_EYE = LEFT_EYE_UPPER + LEFT_EYE_LOWER[-2:0:-1]
OUTER_LIPS = UPPER_OUTER_LIP + LOWER_OUTER_LIP[-2:0:-1]
