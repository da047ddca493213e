// The canonical model arrives with issue 3.
