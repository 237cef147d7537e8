"""Reading: pictures -> digit crops -> readings. Segmentation by recognition, the reader around a
classifier, and the reading model registered beside each classifier (pictures in, numbers out)."""
